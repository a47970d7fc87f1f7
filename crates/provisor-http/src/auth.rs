//! Who is asking, and which domain they may act in.
//!
//! `Principal` authenticates a bearer token (401 if missing, unknown or revoked).
//! `InDomain` additionally resolves the `{domain}` of the route and refuses a domain admin
//! any domain but their own with the same 404 a missing domain gets, so a domain admin
//! cannot even learn which other domains exist. Handlers that take an `InDomain` pass its
//! `DomainId` to the store, which scopes every statement by it.

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use provisor_domain::model::{Actor, Domain, DomainId, Role};
use provisor_domain::token;

use crate::AppState;
use crate::error::{ApiError, ApiResult};

#[derive(Clone, Debug)]
pub struct Principal {
    pub actor: Actor,
    pub role: Role,
    /// The one domain of a domain admin; `None` for an operator.
    pub domain: Option<DomainId>,
}

impl Principal {
    pub fn require_operator(&self) -> ApiResult<()> {
        match self.role {
            Role::Operator => Ok(()),
            _ => Err(ApiError::forbidden("this needs an operator token")),
        }
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        if let Some(p) = parts.extensions.get::<Principal>() {
            return Ok(p.clone());
        }
        let presented = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .ok_or(ApiError::Unauthorized)?;
        let grant = state
            .store
            .token_by_hash(&token::digest(presented))
            .await?
            .ok_or(ApiError::Unauthorized)?;
        let principal = Principal {
            actor: Actor(
                format!("token:{} {}", grant.token.id, grant.token.name)
                    .trim_end()
                    .to_owned(),
            ),
            role: grant.token.role,
            domain: grant.domain,
        };
        parts.extensions.insert(principal.clone());
        Ok(principal)
    }
}

/// An authenticated caller and the domain of the route, which they may act in.
pub struct InDomain {
    pub principal: Principal,
    pub domain: Domain,
}

impl InDomain {
    pub fn id(&self) -> DomainId {
        self.domain.id
    }
    pub fn actor(&self) -> &Actor {
        &self.principal.actor
    }
}

impl FromRequestParts<AppState> for InDomain {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let principal = Principal::from_request_parts(parts, state).await?;
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let name = params
            .iter()
            .find(|(k, _)| *k == "domain")
            .map(|(_, v)| v.to_ascii_lowercase())
            .ok_or_else(|| {
                ApiError::Internal("InDomain used on a route without {domain}".into())
            })?;
        let domain = state.store.domain(&name).await?;
        if principal.domain.is_some_and(|own| own != domain.id) {
            return Err(ApiError::NotFound("domain"));
        }
        tracing::Span::current().record("domain", domain.name.as_str());
        Ok(InDomain { principal, domain })
    }
}
