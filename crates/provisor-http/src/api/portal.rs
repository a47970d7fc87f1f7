//! Self-service for users, signed in with their portal login (`Portal`): the domain's
//! provisioning categories, and a provisioning code for a new phone of their own.

use axum::extract::State;
use axum::http::StatusCode;
use provisor_domain::code::IssuedCode;
use provisor_store::PageRequest;
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
async fn provisioning_categories(st: &AppState, p: &Portal) -> ApiResult<Vec<String>> {
    let mut names = Vec::new();
    let mut after = None;
    loop {
        let page = st
            .store
            .list_categories(
                p.domain.id,
                PageRequest {
                    limit: PageRequest::MAX_LIMIT,
                    after,
                },
            )
            .await?;
        names.extend(
            page.items
                .iter()
                .filter(|c| c.provisioning)
                .map(|c| c.name.clone()),
        );
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(names),
        }
    }
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
        provisioning_categories(&st, &p)
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
    if !provisioning_categories(&st, &p)
        .await?
        .contains(&req.category)
    {
        return Err(ApiError::Invalid(provisor_domain::Invalid::new(
            "category",
            "not a provisioning category of the domain (see /api/v1/self/categories)",
        )));
    }
    let issued = st
        .store
        .create_code(&p.actor(), p.domain.id, Some(&req.category), &p.username)
        .await?;
    Ok((StatusCode::CREATED, Json(issued)))
}
