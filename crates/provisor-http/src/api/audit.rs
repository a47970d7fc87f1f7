use axum::extract::State;
use provisor_domain::model::AuditEntry;
use provisor_store::{Page, PageRequest};
use serde::Deserialize;

use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Json, Query};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this domain's entries (a domain admin always gets only their own).
    domain: Option<String>,
    /// Items per page, 1 to 1000 (default 100).
    #[serde(default = "provisor_store::default_limit")]
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: u32,
    /// The `next` cursor of the previous page (entries older than it).
    after: Option<i64>,
}

/// The audit log of admin changes, newest first. Entries never contain secrets.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = Page<AuditEntry>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn list(
    State(st): State<AppState>,
    p: Principal,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<Page<AuditEntry>>> {
    let page = PageRequest {
        limit: q.limit,
        after: q.after,
    }
    .validate()?;
    let scope = match (p.domain, q.domain) {
        (Some(own), None) => Some(own),
        (own, Some(name)) => {
            let d = st.store.domain(&name.to_ascii_lowercase()).await?;
            if own.is_some_and(|own| own != d.id) {
                return Err(ApiError::NotFound("domain"));
            }
            Some(d.id)
        }
        (None, None) => None,
    };
    Ok(Json(st.store.list_audit(scope, page).await?))
}
