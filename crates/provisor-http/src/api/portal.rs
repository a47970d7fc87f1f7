//! Self-service for users, signed in with their portal login (`Portal`): the domain's
//! provisioning categories, and a provisioning code for a new phone of their own.

use axum::extract::State;
use axum::http::StatusCode;
use provisor_domain::code::IssuedCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Portal;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::Json;

#[derive(Serialize, ToSchema)]
pub struct ProvisioningCategory {
    pub name: String,
}

/// Every category of the domain, page by page (a domain has few).
pub(crate) async fn provisioning_categories(
    st: &AppState,
    d: provisor_domain::model::DomainId,
) -> ApiResult<Vec<String>> {
    Ok(
        provisor_store::all_pages(|p| st.store.list_categories(d, p))
            .await?
            .into_iter()
            .filter(|c| c.provisioning)
            .map(|c| c.name)
            .collect(),
    )
}

/// The categories a user may put a new phone in (those marked `provisioning`).
#[utoipa::path(get, path = "/api/v1/self/categories", tag = "self-service",
    security(("portal" = [])),
    responses((status = 200, body = Vec<ProvisioningCategory>), (status = 401, body = Problem), (status = 429, body = Problem)))]
pub async fn categories(
    State(st): State<AppState>,
    p: Portal,
) -> ApiResult<Json<Vec<ProvisioningCategory>>> {
    Ok(Json(
        provisioning_categories(&st, p.domain.id)
            .await?
            .into_iter()
            .map(|name| ProvisioningCategory { name })
            .collect(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SelfCodeRequest {
    /// One of `/api/v1/self/categories`.
    category: String,
}

/// A provisioning code for a new phone of the signed-in user, in a provisioning category.
#[utoipa::path(post, path = "/api/v1/self/codes", tag = "self-service",
    security(("portal" = [])),
    request_body = SelfCodeRequest,
    responses((status = 201, body = IssuedCode), (status = 400, body = Problem), (status = 401, body = Problem), (status = 429, body = Problem)))]
pub async fn create_code(
    State(st): State<AppState>,
    p: Portal,
    Json(req): Json<SelfCodeRequest>,
) -> ApiResult<(StatusCode, Json<IssuedCode>)> {
    let issued = own_code(&st, &p.actor(), p.domain.id, &p.username, &req.category).await?;
    Ok((StatusCode::CREATED, Json(issued)))
}

/// A code a user asked for themselves: only in one of the domain's provisioning categories.
pub(crate) async fn own_code(
    st: &AppState,
    actor: &provisor_domain::model::Actor,
    d: provisor_domain::model::DomainId,
    username: &str,
    category: &str,
) -> ApiResult<IssuedCode> {
    if !provisioning_categories(st, d)
        .await?
        .iter()
        .any(|c| c == category)
    {
        return Err(ApiError::Invalid(provisor_domain::Invalid::new(
            "category",
            "not a provisioning category of the domain (see /api/v1/self/categories)",
        )));
    }
    Ok(st
        .store
        .create_code(actor, d, Some(category), username)
        .await?)
}
