//! What every operation of the document answers besides what its handler declares: the
//! refusals of the extractors and of the body limits, documented once here so the
//! document says what the server does (checked by the contract tests, scripts/contract).

use utoipa::openapi::path::Operation;
use utoipa::openapi::response::Response;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr};

/// The media type of problem documents (RFC 7807), which every error is answered with.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Completes every operation of `doc`:
/// - problem documents are `application/problem+json`, as `ApiError` answers them;
/// - 400 where there is a path, query or body to refuse (a path or query that cannot be
///   read, a bad field);
/// - 401 where a credential is needed (every operation: a bearer token or a portal login);
/// - 404 where the path names something (an unknown domain, user, device…);
/// - 413 where there is a body (each route's body limit), and 415 where the body is JSON
///   (sent without a JSON content type).
pub fn complete(doc: &mut OpenApi) {
    for (path, item) in doc.paths.paths.iter_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in operations.into_iter().flatten() {
            complete_operation(path, op);
        }
    }
}

fn complete_operation(path: &str, op: &mut Operation) {
    for response in op.responses.responses.values_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        if let Some(content) = response.content.shift_remove("application/json") {
            let key = if is_problem(&content) {
                PROBLEM_JSON
            } else {
                "application/json"
            };
            response.content.insert(key.to_owned(), content);
        }
    }
    let has_params = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let body = op.request_body.as_ref();
    let json_body = body.is_some_and(|b| b.content.keys().any(|k| k.ends_with("json")));
    let mut add = |status: &str, description: &str| {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::T(problem(description)));
    };
    if has_params || body.is_some() {
        add(
            "400",
            "The path, query or body cannot be read, or a field is invalid",
        );
    }
    add("401", "No valid credential");
    if path.contains('{') {
        add("404", "Not found (or not in the caller's domain)");
    }
    if body.is_some() {
        add("413", "The body is larger than the route accepts");
    }
    if json_body {
        add("415", "The body was not sent as JSON");
    }
}

fn is_problem(content: &Content) -> bool {
    matches!(&content.schema, Some(RefOr::Ref(r)) if r.ref_location.ends_with("/Problem"))
}

fn problem(description: &str) -> Response {
    let mut response = Response::new(description);
    let content = Content::new(Some(Ref::from_schema_name("Problem")));
    response.content.insert(PROBLEM_JSON.to_owned(), content);
    response
}

/// Bytes as they are (a firmware file, an upload): a body, not a list of numbers.
pub struct Binary;

impl utoipa::PartialSchema for Binary {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl utoipa::ToSchema for Binary {}
