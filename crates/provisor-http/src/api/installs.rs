//! Softphone installations of a user: listed and revoked by an admin or by the user.

use axum::extract::State;
use axum::http::StatusCode;
use provisor_domain::model::Install;

use crate::AppState;
use crate::auth::{InDomain, Portal};
use crate::error::{ApiResult, Problem};
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
