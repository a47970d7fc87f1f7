//! Console administrators: who signs in to the web console, as an operator or as the admin
//! of one domain. A domain admin's token manages only their domain's administrators.

use axum::extract::State;
use axum::http::StatusCode;
use provisor_domain::model::Role;
use provisor_domain::secret::SecretString;
use provisor_store::Admin;
use serde::Deserialize;
use utoipa::ToSchema;

use super::tokens::grant_scope;
use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiResult, Problem};
use crate::extract::{Json, Path};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAdmin {
    /// The sign-in name (letters, digits and `. _ - + @`; case is ignored).
    name: String,
    role: Role,
    /// Required for `domain-admin`, absent for `operator`.
    domain: Option<String>,
    /// At least 8 characters.
    #[schema(value_type = String)]
    password: SecretString,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    #[schema(value_type = String)]
    password: SecretString,
}

/// A console password, checked like a portal password and hashed (argon2id, off the
/// executor).
async fn console_password(pw: SecretString) -> ApiResult<String> {
    provisor_domain::model::secret_text("password", &pw)?;
    Ok(super::users::hash_password(Some(pw))
        .await?
        .unwrap_or_default())
}

#[utoipa::path(get, path = "/api/v1/admins", tag = "tokens",
    responses((status = 200, body = Vec<Admin>), (status = 401, body = Problem)))]
pub async fn list(State(st): State<AppState>, p: Principal) -> ApiResult<Json<Vec<Admin>>> {
    Ok(Json(st.store.list_admins(p.domain).await?))
}

/// Adds a console administrator.
#[utoipa::path(post, path = "/api/v1/admins", tag = "tokens", request_body = NewAdmin,
    responses((status = 201, body = Admin), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn create(
    State(st): State<AppState>,
    p: Principal,
    Json(req): Json<NewAdmin>,
) -> ApiResult<(StatusCode, Json<Admin>)> {
    Ok((StatusCode::CREATED, Json(add(&st, &p, req).await?)))
}

/// Adds an administrator within what `p` may grant (the API's and the console's way).
pub async fn add(st: &AppState, p: &Principal, req: NewAdmin) -> ApiResult<Admin> {
    let domain = grant_scope(st, p, req.role, req.domain.as_deref()).await?;
    let hash = console_password(req.password).await?;
    Ok(st
        .store
        .create_admin(&p.actor, &req.name, req.role, domain, &hash)
        .await?)
}

/// Sets an administrator's password; their sessions end.
#[utoipa::path(put, path = "/api/v1/admins/{name}/password", tag = "tokens", params(("name" = String, Path)),
    request_body = NewPassword,
    responses((status = 204), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn set_password(
    State(st): State<AppState>,
    p: Principal,
    Path(name): Path<String>,
    Json(req): Json<NewPassword>,
) -> ApiResult<StatusCode> {
    new_password(&st, &p, &name, req.password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets administrator `name`'s password, within `p`'s scope.
pub async fn new_password(
    st: &AppState,
    p: &Principal,
    name: &str,
    password: SecretString,
) -> ApiResult<()> {
    let hash = console_password(password).await?;
    Ok(st
        .store
        .set_admin_password(&p.actor, p.domain, &name.to_lowercase(), &hash)
        .await?)
}

/// Removes an administrator; their sessions end.
#[utoipa::path(delete, path = "/api/v1/admins/{name}", tag = "tokens", params(("name" = String, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn delete(
    State(st): State<AppState>,
    p: Principal,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    st.store
        .delete_admin(&p.actor, p.domain, &name.to_lowercase())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
