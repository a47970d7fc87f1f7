//! Softphone installations of a user: listed and revoked by an admin or by the user.

use axum::extract::State;
use axum::http::StatusCode;
use provisor_domain::model::Install;

use crate::AppState;
use crate::auth::{InDomain, Portal};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Json, Path};

#[utoipa::path(get, path = "/api/v1/domains/{domain}/users/{username}/installs", tag = "users",
    params(("domain" = String, Path), ("username" = String, Path)),
    responses((status = 200, body = Vec<Install>), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn list(
    State(st): State<AppState>,
    d: InDomain,
    Path((_, username)): Path<(String, String)>,
) -> ApiResult<Json<Vec<Install>>> {
    Ok(Json(st.store.list_installs(d.id(), &username).await?))
}

/// Revokes an installation: its next provisioning takes the accounts away.
#[utoipa::path(delete, path = "/api/v1/domains/{domain}/users/{username}/installs/{id}", tag = "users",
    params(("domain" = String, Path), ("username" = String, Path), ("id" = i64, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn revoke(
    State(st): State<AppState>,
    d: InDomain,
    Path((_, username, id)): Path<(String, String, i64)>,
) -> ApiResult<StatusCode> {
    st.store
        .revoke_install(d.actor(), d.id(), &username, id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in user's softphone installations.
#[utoipa::path(get, path = "/api/v1/self/installs", tag = "self-service", security(("portal" = [])),
    responses((status = 200, body = Vec<Install>), (status = 401, body = Problem), (status = 429, body = Problem)))]
pub async fn list_own(State(st): State<AppState>, p: Portal) -> ApiResult<Json<Vec<Install>>> {
    Ok(Json(
        st.store.list_installs(p.domain.id, &p.username).await?,
    ))
}

/// Revokes one of the signed-in user's installations.
#[utoipa::path(delete, path = "/api/v1/self/installs/{id}", tag = "self-service", security(("portal" = [])),
    params(("id" = i64, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 404, body = Problem), (status = 429, body = Problem)))]
pub async fn revoke_own(
    State(st): State<AppState>,
    p: Portal,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    st.store
        .revoke_install(&p.actor(), p.domain.id, &p.username, id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The Web Service Definitions to paste into the Acrobits Cloud Softphone portal for the
/// domain's users (re-provisioning comes with each Account XML).
#[utoipa::path(get, path = "/api/v1/domains/{domain}/acrobits", tag = "users", params(("domain" = String, Path)),
    responses((status = 200, body = Object), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn acrobits(
    State(st): State<AppState>,
    _d: InDomain,
) -> ApiResult<Json<serde_json::Value>> {
    let o = st.phones.options();
    let base = o.secure_url.clone().unwrap_or_else(|| o.public_url.clone());
    Ok(Json(crate::softphone::acrobits_definitions(
        base.trim_end_matches('/'),
    )))
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct LinphoneInstall {
    /// The remote-provisioning URL (shown once): Linphone's `config-uri`, or its QR code.
    url: String,
}

/// A new Linphone installation for the user: a tokenized remote-provisioning URL.
#[utoipa::path(post, path = "/api/v1/domains/{domain}/users/{username}/linphone", tag = "users",
    params(("domain" = String, Path), ("username" = String, Path)),
    responses((status = 201, body = LinphoneInstall), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn linphone(
    State(st): State<AppState>,
    d: InDomain,
    Path((_, username)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<LinphoneInstall>)> {
    let url = crate::softphone::new_linphone(&st, d.id(), &username).await?;
    Ok((StatusCode::CREATED, Json(LinphoneInstall { url })))
}

/// A new Linphone installation for the signed-in user.
#[utoipa::path(post, path = "/api/v1/self/linphone", tag = "self-service", security(("portal" = [])),
    responses((status = 201, body = LinphoneInstall), (status = 401, body = Problem), (status = 429, body = Problem)))]
pub async fn linphone_own(
    State(st): State<AppState>,
    p: Portal,
) -> ApiResult<(StatusCode, Json<LinphoneInstall>)> {
    let url = crate::softphone::new_linphone(&st, p.domain.id, &p.username).await?;
    Ok((StatusCode::CREATED, Json(LinphoneInstall { url })))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct QrQuery {
    /// `svg` (default) or `png`.
    format: Option<String>,
}

/// The payload of `app`'s onboarding QR code for the user; `password` (the self-service
/// login's) is put in where the app's format takes it.
pub(crate) async fn qr_payload(
    st: &AppState,
    d: provisor_domain::model::DomainId,
    domain: &str,
    username: &str,
    app: &str,
    password: Option<&str>,
) -> ApiResult<String> {
    let user = st.store.softphone_user(d, username).await?;
    let settings = provisor_domain::settings::merge(&user.layers);
    let setting = |key: &str| {
        settings
            .get(key)
            .and_then(serde_json::Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| {
                ApiError::BadRequest(format!("set the domain's (or user's) {key} setting first"))
            })
    };
    let login = format!("{username}@{domain}");
    let enc = crate::url_component;
    Ok(match app {
        "acrobits" => {
            let cloud = setting("acrobits_cloud_id")?;
            match password {
                Some(p) => format!("csc:{}:{}@{cloud}", enc(&login), enc(p)),
                None => format!("csc:{}@{cloud}", enc(&login)),
            }
        }
        "sessiontalk" => {
            let provider = setting("sessiontalk_provider_id")?;
            let p = password.ok_or_else(|| {
                ApiError::BadRequest("a SessionTalk QR code carries the user's password: the user makes it in self-service".into())
            })?;
            format!("scsc:{login}:{p}:{provider}")
        }
        "linphone" => crate::softphone::new_linphone(st, d, username).await?,
        _ => return Err(ApiError::NotFound("app")),
    })
}

/// `payload` as a QR code image in `format`.
pub(crate) fn qr_image(payload: &str, format: crate::qr::Format) -> ApiResult<Vec<u8>> {
    crate::qr::render(payload, format)
        .ok_or_else(|| ApiError::BadRequest("the payload is too long for a QR code".into()))
}

/// The QR code of `app`'s onboarding for the user, as an image response.
async fn qr_for(
    st: &AppState,
    d: provisor_domain::model::DomainId,
    domain: &str,
    username: &str,
    app: &str,
    password: Option<&str>,
    format: Option<String>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let format = crate::qr::Format::parse(format.as_deref().unwrap_or("svg"))
        .ok_or_else(|| ApiError::BadRequest("format is svg or png".into()))?;
    let payload = qr_payload(st, d, domain, username, app, password).await?;
    let image = qr_image(&payload, format)?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, format.content_type()),
            (axum::http::header::CACHE_CONTROL, "no-store"),
        ],
        image,
    )
        .into_response())
}

/// A QR code for the user's app (`acrobits`: without the password; `linphone`: a new
/// installation's URL). SessionTalk's carries the password, so only the user makes it.
#[utoipa::path(get, path = "/api/v1/domains/{domain}/users/{username}/qr/{app}", tag = "users",
    params(("domain" = String, Path), ("username" = String, Path), ("app" = String, Path), QrQuery),
    responses((status = 200, content_type = "image/svg+xml", body = String), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn qr(
    State(st): State<AppState>,
    d: InDomain,
    Path((_, username, app)): Path<(String, String, String)>,
    crate::extract::Query(q): crate::extract::Query<QrQuery>,
) -> ApiResult<axum::response::Response> {
    qr_for(&st, d.id(), &d.domain.name, &username, &app, None, q.format).await
}

/// A QR code for the signed-in user's app: `acrobits` (`csc:user:password@CLOUDID`),
/// `sessiontalk` (`scsc:user:password:PROVIDER`), `linphone` (a new installation's URL).
#[utoipa::path(get, path = "/api/v1/self/qr/{app}", tag = "self-service", security(("portal" = [])),
    params(("app" = String, Path), QrQuery),
    responses((status = 200, content_type = "image/svg+xml", body = String), (status = 400, body = Problem), (status = 401, body = Problem), (status = 429, body = Problem)))]
pub async fn qr_own(
    State(st): State<AppState>,
    p: Portal,
    Path(app): Path<String>,
    crate::extract::Query(q): crate::extract::Query<QrQuery>,
) -> ApiResult<axum::response::Response> {
    let name = p.domain.name.clone();
    qr_for(
        &st,
        p.domain.id,
        &name,
        &p.username,
        &app,
        Some(p.password.expose()),
        q.format,
    )
    .await
}
