use axum::extract::State;
use axum::http::StatusCode;
use provisor_domain::model::{Domain, DomainPatch, NewDomain};
use provisor_store::{Page, PageRequest};

use crate::AppState;
use crate::auth::{InDomain, Principal};
use crate::error::{ApiResult, Problem};
use crate::extract::{Json, Query};

/// Domains the token may see: all for an operator, their own for a domain admin.
#[utoipa::path(get, path = "/api/v1/domains", tag = "domains", params(PageRequest),
    responses((status = 200, body = Page<Domain>), (status = 400, body = Problem), (status = 401, body = Problem)))]
pub async fn list(
    State(st): State<AppState>,
    p: Principal,
    Query(page): Query<PageRequest>,
) -> ApiResult<Json<Page<Domain>>> {
    let page = page.validate()?;
    Ok(Json(match p.domain {
        None => st.store.list_domains(page).await?,
        Some(own) => {
            let items = match page.after {
                Some(after) if after >= own.0 => vec![],
                _ => vec![st.store.domain_by_id(own).await?],
            };
            Page { items, next: None }
        }
    }))
}

/// Creates a domain (operators only).
#[utoipa::path(post, path = "/api/v1/domains", tag = "domains", request_body = NewDomain,
    responses((status = 201, body = Domain), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn create(
    State(st): State<AppState>,
    p: Principal,
    Json(new): Json<NewDomain>,
) -> ApiResult<(StatusCode, Json<Domain>)> {
    p.require_operator()?;
    let domain = st.store.create_domain(&p.actor, &new.validate()?).await?;
    Ok((StatusCode::CREATED, Json(domain)))
}

#[utoipa::path(get, path = "/api/v1/domains/{domain}", tag = "domains", params(("domain" = String, Path)),
    responses((status = 200, body = Domain), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn get(d: InDomain) -> ApiResult<Json<Domain>> {
    Ok(Json(d.domain))
}

/// Changes a domain's description or its settings layer (replaced whole).
#[utoipa::path(patch, path = "/api/v1/domains/{domain}", tag = "domains", params(("domain" = String, Path)), request_body = DomainPatch,
    responses((status = 200, body = Domain), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn update(
    State(st): State<AppState>,
    d: InDomain,
    Json(patch): Json<DomainPatch>,
) -> ApiResult<Json<Domain>> {
    Ok(Json(
        st.store
            .update_domain(d.actor(), d.id(), &patch.validate()?)
            .await?,
    ))
}

/// Deletes a domain with everything in it (operators only).
#[utoipa::path(delete, path = "/api/v1/domains/{domain}", tag = "domains", params(("domain" = String, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete(State(st): State<AppState>, d: InDomain) -> ApiResult<StatusCode> {
    d.principal.require_operator()?;
    st.store.delete_domain(d.actor(), d.id()).await?;
    Ok(StatusCode::NO_CONTENT)
}
