use axum::extract::State;
use axum::http::StatusCode;
use provisor_domain::model::{ApiToken, Role};
use provisor_domain::names;
use provisor_store::{Page, PageRequest, issue_token};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Json, Path, Query};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTokenRequest {
    /// A label to recognise the token by.
    #[serde(default)]
    name: String,
    role: Role,
    /// Required for `domain-admin`, absent for `operator`.
    domain: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    /// The secret, shown only in this answer.
    token: String,
    #[serde(flatten)]
    info: ApiToken,
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", params(PageRequest),
    responses((status = 200, body = Page<ApiToken>), (status = 400, body = Problem), (status = 401, body = Problem)))]
pub async fn list(
    State(st): State<AppState>,
    p: Principal,
    Query(page): Query<PageRequest>,
) -> ApiResult<Json<Page<ApiToken>>> {
    Ok(Json(
        st.store.list_tokens(p.domain, page.validate()?).await?,
    ))
}

/// The domain a new grant of `role` (a token, a console administrator) is limited to, if
/// `p` may make it: operators make any, a domain admin only domain admins of their domain.
pub(super) async fn grant_scope(
    st: &AppState,
    p: &Principal,
    role: Role,
    domain: Option<&str>,
) -> ApiResult<Option<provisor_domain::model::DomainId>> {
    match (role, domain) {
        (Role::Operator, None) => {
            p.require_operator()?;
            Ok(None)
        }
        (Role::Operator, Some(_)) => Err(provisor_domain::Invalid::new(
            "domain",
            "an operator is not limited to a domain",
        )
        .into()),
        (Role::DomainAdmin, None) => {
            Err(provisor_domain::Invalid::new("domain", "a domain admin needs a domain").into())
        }
        (Role::DomainAdmin, Some(name)) => {
            let domain = st.store.domain(&name.to_ascii_lowercase()).await?;
            if p.domain.is_some_and(|own| own != domain.id) {
                return Err(ApiError::NotFound("domain"));
            }
            Ok(Some(domain.id))
        }
    }
}

/// Creates a token. A domain admin may create domain-admin tokens for their own domain.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = NewTokenRequest,
    responses((status = 201, body = CreatedToken), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn create(
    State(st): State<AppState>,
    p: Principal,
    Json(req): Json<NewTokenRequest>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let name = names::text("name", &req.name, 100)?;
    let domain = grant_scope(&st, &p, req.role, req.domain.as_deref()).await?;
    let (info, secret) = issue_token(st.store.as_ref(), &p.actor, &name, req.role, domain).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token: secret.expose().to_owned(),
            info,
        }),
    ))
}

/// Revokes a token at once.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", params(("id" = i64, Path)),
    responses((status = 200, body = ApiToken), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn revoke(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<ApiToken>> {
    Ok(Json(st.store.revoke_token(&p.actor, p.domain, id).await?))
}
