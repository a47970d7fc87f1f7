//! Provisioning codes requested by a domain admin, and the domain's event log.

use axum::extract::State;
use axum::http::StatusCode;
use provisor_domain::code::IssuedCode;
use provisor_domain::model::Event;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::InDomain;
use crate::error::{ApiResult, Problem};
use crate::extract::{Json, Query};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    /// The user whose SIP accounts become the phone's lines.
    user: String,
    /// The category the phone goes into.
    category: Option<String>,
}

/// A provisioning code for `user`: typed on a new phone (or sent to `/p/activate`), it
/// makes the phone theirs. Shown once; valid for the domain's `phone_policy.code_seconds`.
#[utoipa::path(post, path = "/api/v1/domains/{domain}/codes", tag = "codes", params(("domain" = String, Path)),
    request_body = CodeRequest,
    responses((status = 201, body = IssuedCode), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn create(
    State(st): State<AppState>,
    d: InDomain,
    Json(req): Json<CodeRequest>,
) -> ApiResult<(StatusCode, Json<IssuedCode>)> {
    let issued = st
        .store
        .create_code(d.actor(), d.id(), req.category.as_deref(), &req.user)
        .await?;
    Ok((StatusCode::CREATED, Json(issued)))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// The id of the last event seen; 0 (or absent) for the first.
    #[serde(default)]
    after: i64,
    /// At most this many (1 to 1000, default 100).
    limit: Option<u32>,
}

/// The domain's events after a cursor, oldest first: `device.provisioned`, `code.expired`, ….
#[utoipa::path(get, path = "/api/v1/domains/{domain}/events", tag = "codes", params(("domain" = String, Path), EventsQuery),
    responses((status = 200, body = Vec<Event>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn events(
    State(st): State<AppState>,
    d: InDomain,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Json<Vec<Event>>> {
    Ok(Json(
        st.store
            .list_events(d.id(), q.after, q.limit.unwrap_or(100))
            .await?,
    ))
}
