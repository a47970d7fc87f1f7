//! The admin REST API under `/api/v1`, documented by the OpenAPI 3.1 document served at
//! `/api/v1/openapi.json`, which is generated from these handlers' annotations.
//!
//! Every route but the document itself needs a bearer token. Routes under
//! `/api/v1/domains/{domain}` take an `InDomain`, so a domain admin reaches only their
//! own domain; operator-only routes call `require_operator`.

mod accounts;
pub(crate) mod admins;
mod audit;
mod bulk;
mod categories;
mod codes;
mod devices;
mod doc;
mod domains;
mod firmware;
mod innovaphone;
pub(crate) mod installs;
mod jobs;
pub(crate) mod portal;
mod provisioning;
pub(crate) mod rollouts;
mod templates;
pub(crate) mod tokens;
pub(crate) mod users;
pub(crate) mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiError, ApiResult, Problem};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Provisor admin API",
        description = "Domains, categories, users, SIP accounts, devices, tokens, bulk import/export and the audit log. \
                       Errors are RFC 7807 problem documents (application/problem+json) with a stable `type`."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(Problem)),
    tags(
        (name = "domains"), (name = "categories"), (name = "users"), (name = "accounts"),
        (name = "devices"), (name = "codes"), (name = "self-service"), (name = "innovaphone"), (name = "jobs"), (name = "templates"), (name = "firmware"), (name = "bulk"), (name = "tokens"), (name = "audit")
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // Users' own login: HTTP Basic with `user@domain` and their portal password.
        components.add_security_scheme(
            "portal",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
    }
}

/// The API routes with their document.
pub fn router() -> Router<AppState> {
    let import = OpenApiRouter::new()
        .routes(routes!(bulk::import))
        .layer(DefaultBodyLimit::max(crate::MAX_IMPORT_BODY));
    let (router, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(domains::list, domains::create))
        .routes(routes!(domains::get, domains::update, domains::delete))
        .routes(routes!(categories::list, categories::create))
        .routes(routes!(
            categories::get,
            categories::update,
            categories::delete
        ))
        .routes(routes!(users::list, users::create))
        .routes(routes!(users::get, users::update, users::delete))
        .routes(routes!(accounts::list_for_user, accounts::create))
        .routes(routes!(accounts::list))
        .routes(routes!(accounts::get, accounts::update, accounts::delete))
        .routes(routes!(devices::list, devices::create))
        .routes(routes!(devices::get, devices::update, devices::delete))
        .routes(routes!(provisioning::rotate_token))
        .routes(routes!(provisioning::arm))
        .routes(routes!(provisioning::secrets))
        .routes(routes!(provisioning::refusals))
        .routes(routes!(provisioning::uploads))
        .routes(routes!(provisioning::upload))
        .routes(routes!(provisioning::unassigned))
        .routes(routes!(codes::create))
        .routes(routes!(innovaphone::get, innovaphone::put))
        .routes(routes!(innovaphone::device))
        .routes(routes!(jobs::list, jobs::create))
        .routes(routes!(jobs::get, jobs::update))
        .routes(routes!(jobs::devices))
        .routes(routes!(jobs::get_pin, jobs::put_pin, jobs::delete_pin))
        .routes(routes!(webhooks::create, webhooks::list))
        .routes(routes!(webhooks::delete))
        .routes(routes!(webhooks::deliveries))
        .routes(routes!(
            codes::set_auto,
            codes::get_auto,
            codes::delete_auto
        ))
        .routes(routes!(rollouts::create))
        .routes(routes!(rollouts::get))
        .routes(routes!(portal::categories))
        .routes(routes!(installs::list))
        .routes(routes!(installs::acrobits))
        .routes(routes!(installs::linphone))
        .routes(routes!(installs::linphone_own))
        .routes(routes!(installs::qr))
        .routes(routes!(installs::qr_own))
        .routes(routes!(installs::revoke))
        .routes(routes!(installs::list_own))
        .routes(routes!(installs::revoke_own))
        .routes(routes!(portal::create_code))
        .routes(routes!(codes::events))
        .routes(routes!(templates::render))
        .routes(routes!(templates::list))
        .routes(routes!(templates::builtin))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(templates::get, templates::put, templates::delete))
                .routes(routes!(templates::import_3cx))
                .layer(DefaultBodyLimit::max(templates::MAX_TEMPLATE_BODY)),
        )
        .merge(import)
        .merge(
            OpenApiRouter::new()
                .routes(routes!(firmware::put, firmware::delete))
                .layer(DefaultBodyLimit::max(crate::firmware::MAX_FIRMWARE)),
        )
        .routes(routes!(firmware::list))
        .routes(routes!(bulk::export))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::revoke))
        .routes(routes!(admins::list, admins::create))
        .routes(routes!(admins::delete))
        .routes(routes!(admins::set_password))
        .routes(routes!(audit::list))
        .split_for_parts();
    let mut doc = doc;
    doc::complete(&mut doc);
    let doc = Arc::new(doc);
    router.route(
        "/api/v1/openapi.json",
        get(move || async move { axum::Json(doc.as_ref().clone()) }),
    )
}

/// Runs a CPU-heavy step (hashing, parsing large files) off the async executor.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> ApiResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(ApiError::from)
}
