//! Templates stored per domain or category (replacing a built-in template, or adding a
//! device file whose name holds `{mac}`), 3CX imports, the built-in sources to start from,
//! and the render preview of what a device would receive.
//!
//! Every template is checked when it is stored (`provisor_render::stored`): a problem is a
//! 422 `invalid-template` with its line and column, never a phone's failed fetch.

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use provisor_domain::Mac;
use provisor_domain::model::Role;
use provisor_domain::template::{StoredTemplate, TemplateOrigin};
use provisor_render::Unstorable;
use provisor_store::TemplateKey;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::{InDomain, Principal};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Body, Json, Path, Query};
use crate::phone::{Preview, PreviewError};

/// Largest template source (and 3CX file) accepted.
pub const MAX_TEMPLATE_BODY: usize = 256 * 1024;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// The category the template applies to; without it, the whole domain.
    category: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ImportScope {
    /// The vendor whose phones get the imported files (e.g. `snom`).
    vendor: String,
    category: Option<String>,
}

fn key<'a>(scope: &'a Scope, vendor: &'a str, name: &'a str) -> TemplateKey<'a> {
    TemplateKey {
        category: scope.category.as_deref(),
        vendor,
        name,
    }
}

fn text(body: &[u8]) -> ApiResult<&str> {
    std::str::from_utf8(body).map_err(|_| ApiError::BadRequest("the template is not UTF-8".into()))
}

fn unstorable(e: Unstorable) -> ApiError {
    match e {
        Unstorable::Name(why) => ApiError::BadRequest(why),
        Unstorable::Problem(p) => ApiError::Template(p),
    }
}

/// The domain's and its categories' stored templates.
#[utoipa::path(get, path = "/api/v1/domains/{domain}/templates", tag = "templates", params(("domain" = String, Path)),
    responses((status = 200, body = Vec<StoredTemplate>), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn list(State(st): State<AppState>, d: InDomain) -> ApiResult<Json<Vec<StoredTemplate>>> {
    Ok(Json(st.store.list_templates(d.id()).await?))
}

/// One stored template.
#[utoipa::path(get, path = "/api/v1/domains/{domain}/templates/{vendor}/{name}", tag = "templates",
    params(("domain" = String, Path), ("vendor" = String, Path), ("name" = String, Path), Scope),
    responses((status = 200, body = StoredTemplate), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn get(
    State(st): State<AppState>,
    d: InDomain,
    Path((_, vendor, name)): Path<(String, String, String)>,
    Query(scope): Query<Scope>,
) -> ApiResult<Json<StoredTemplate>> {
    Ok(Json(
        st.store
            .template(d.id(), key(&scope, &vendor, &name))
            .await?,
    ))
}

/// Stores the body (the template's source) as the domain's, or the category's, `name`
/// template of `vendor`: a built-in device template it replaces, or a device file of its
/// own whose name holds `{mac}`. Checked first; a problem is 422 with line and column.
#[utoipa::path(put, path = "/api/v1/domains/{domain}/templates/{vendor}/{name}", tag = "templates",
    params(("domain" = String, Path), ("vendor" = String, Path), ("name" = String, Path), Scope),
    request_body(content = String, content_type = "text/plain"),
    responses((status = 200, body = StoredTemplate), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem), (status = 413, body = Problem), (status = 422, body = Problem)))]
pub async fn put(
    State(st): State<AppState>,
    d: InDomain,
    Path((_, vendor, name)): Path<(String, String, String)>,
    Query(scope): Query<Scope>,
    Body(body): Body,
) -> ApiResult<Json<StoredTemplate>> {
    let source = text(&body)?.to_owned();
    // Checking renders the template: off the async executor.
    let (phones, checked_vendor, checked_source) =
        (st.phones.clone(), vendor.clone(), source.clone());
    let name = super::blocking(move || {
        phones
            .renderer()
            .storable(&checked_vendor, &name, &checked_source)
    })
    .await?
    .map_err(unstorable)?;
    let source = source.as_str();
    let stored = st
        .store
        .put_template(
            d.actor(),
            d.id(),
            key(&scope, &vendor, &name),
            TemplateOrigin::Template,
            source,
        )
        .await?;
    Ok(Json(stored))
}

/// Removes a stored template; the device files it made come from the built-in (or the
/// domain's) template again.
#[utoipa::path(delete, path = "/api/v1/domains/{domain}/templates/{vendor}/{name}", tag = "templates",
    params(("domain" = String, Path), ("vendor" = String, Path), ("name" = String, Path), Scope),
    responses((status = 204), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn delete(
    State(st): State<AppState>,
    d: InDomain,
    Path((_, vendor, name)): Path<(String, String, String)>,
    Query(scope): Query<Scope>,
) -> ApiResult<StatusCode> {
    st.store
        .delete_template(d.actor(), d.id(), key(&scope, &vendor, &name))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct Imported {
    pub templates: Vec<StoredTemplate>,
    pub warnings: Vec<String>,
}

/// Imports a 3CX phone template (XML with `<deviceconfig filename="…%%mac_address%%…">`):
/// each file becomes a stored template of `vendor` named by its file name, `{mac}` for the
/// MAC, written for every line of the device. An unknown `%%variable%%` is a 422 naming it;
/// nothing is stored unless every file can be.
#[utoipa::path(post, path = "/api/v1/domains/{domain}/templates/import-3cx", tag = "templates",
    params(("domain" = String, Path), ImportScope),
    request_body(content = String, content_type = "application/xml"),
    responses((status = 200, body = Imported), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem), (status = 413, body = Problem), (status = 422, body = Problem)))]
pub async fn import_3cx(
    State(st): State<AppState>,
    d: InDomain,
    Query(scope): Query<ImportScope>,
    Body(body): Body,
) -> ApiResult<Json<Imported>> {
    let xml = text(&body)?.to_owned();
    let (phones, vendor) = (st.phones.clone(), scope.vendor.clone());
    let files = super::blocking(move || phones.renderer().import_3cx(&vendor, &xml))
        .await?
        .map_err(unstorable)?;
    let scope_key = Scope {
        category: scope.category.clone(),
    };
    let mut templates = Vec::new();
    let mut warnings = Vec::new();
    for f in files {
        templates.push(
            st.store
                .put_template(
                    d.actor(),
                    d.id(),
                    key(&scope_key, &scope.vendor, &f.name),
                    TemplateOrigin::ThreeCx,
                    &f.source,
                )
                .await?,
        );
        warnings.extend(f.warnings);
    }
    Ok(Json(Imported {
        templates,
        warnings,
    }))
}

/// The source of a built-in template (or of the installation's catalog directory), to start
/// a replacement from.
#[utoipa::path(get, path = "/api/v1/vendors/{vendor}/templates/{name}", tag = "templates",
    params(("vendor" = String, Path), ("name" = String, Path)),
    responses((status = 200, content_type = "text/plain", body = String), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn builtin(
    State(st): State<AppState>,
    _p: Principal,
    Path((vendor, name)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    let source = st
        .phones
        .renderer()
        .source(&vendor, &name)
        .ok_or(ApiError::NotFound("template"))?;
    Ok(([(CONTENT_TYPE, "text/plain; charset=utf-8")], source))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenderRequest {
    /// The file name the phone asks for, e.g. `001565aabbcc.cfg`.
    file: String,
    /// Show SIP and admin passwords; only operators may, for domain admins they stay masked.
    #[serde(default)]
    reveal: bool,
}

/// What the device would receive for `file`, with the template it comes from. SIP and
/// admin passwords are `********` unless an operator asks to `reveal` them.
#[utoipa::path(post, path = "/api/v1/domains/{domain}/devices/{mac}/render", tag = "devices",
    params(("domain" = String, Path), ("mac" = String, Path)),
    request_body = RenderRequest,
    responses((status = 200, body = Preview), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn render(
    State(st): State<AppState>,
    d: InDomain,
    Path((_, mac)): Path<(String, String)>,
    Json(req): Json<RenderRequest>,
) -> ApiResult<Json<Preview>> {
    let mac = Mac::parse(&mac)?;
    let device = st
        .store
        .phone_by_mac(mac)
        .await?
        .filter(|p| p.domain == d.id())
        .ok_or(ApiError::NotFound("device"))?;
    let reveal = req.reveal && d.principal.role == Role::Operator;
    match st.phones.preview(&device, &req.file, reveal) {
        Ok(preview) => Ok(Json(preview)),
        Err(e @ PreviewError::NoSuchFile(_)) => Err(ApiError::BadRequest(e.to_string())),
        Err(PreviewError::Template(why)) => {
            Err(ApiError::Template(provisor_render::TemplateProblem {
                line: 1,
                column: 1,
                message: why,
            }))
        }
    }
}
