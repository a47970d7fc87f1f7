//! Provisioning codes requested by a domain admin, and the domain's event log.

use axum::extract::State;
use axum::http::StatusCode;
use provisor_domain::code::IssuedCode;
use provisor_domain::model::Event;
use provisor_domain::secret::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::InDomain;
use crate::error::{ApiError, ApiResult, Problem};
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
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// The id of the last event seen; 0 (or absent) for the first.
    #[serde(default)]
    after: i64,
    /// At most this many (1 to 1000, default 100; a number beyond is taken as the bound).
    limit: Option<u32>,
    /// Long-poll: if there is nothing after `after`, wait up to this many seconds (at most
    /// 60; a longer wait is cut to 60) for the next event.
    wait: Option<u64>,
}

/// How often a long-polling request looks again.
const POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// The domain's events after a cursor, oldest first (`device.provisioned`,
/// `device.registered`, `code.expired`, `rollout.completed`); with `wait`, a long-poll. A
/// connector keeps the last `id` it handled and asks for what came after, so it misses
/// nothing while it was away.
#[utoipa::path(get, path = "/api/v1/domains/{domain}/events", tag = "codes", params(("domain" = String, Path), EventsQuery),
    responses((status = 200, body = Vec<Event>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn events(
    State(st): State<AppState>,
    d: InDomain,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Json<Vec<Event>>> {
    let until =
        tokio::time::Instant::now() + std::time::Duration::from_secs(q.wait.unwrap_or(0).min(60));
    loop {
        let events = st
            .store
            .list_events(d.id(), q.after, q.limit.unwrap_or(100))
            .await?;
        if !events.is_empty() || tokio::time::Instant::now() >= until {
            return Ok(Json(events));
        }
        tokio::time::sleep(POLL).await;
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AutoTokenRequest {
    /// The token; a random one if absent.
    token: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AutoProvisioning {
    #[schema(value_type = String)]
    #[serde(serialize_with = "provisor_domain::secret::serialize_exposed")]
    token: SecretString,
    /// The URL to roll out for `category` (when asked for one), every value encoded.
    url: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AutoQuery {
    /// The category devices are registered into.
    category: Option<String>,
}

/// Sets (or rotates, with a random one) the domain's automatic-provisioning token: a
/// device whose provisioning URL carries `domain`, `token` and `category` is registered
/// into that category without a code. The old token stops working at once.
#[utoipa::path(put, path = "/api/v1/domains/{domain}/auto-provisioning", tag = "codes", params(("domain" = String, Path), AutoQuery),
    request_body = AutoTokenRequest,
    responses((status = 200, body = AutoProvisioning), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn set_auto(
    State(st): State<AppState>,
    d: InDomain,
    Query(q): Query<AutoQuery>,
    Json(req): Json<AutoTokenRequest>,
) -> ApiResult<Json<AutoProvisioning>> {
    let token = match req.token {
        Some(t) if t.is_empty() || t.len() > 256 => {
            return Err(
                provisor_domain::Invalid::new("token", "must be 1 to 256 characters").into(),
            );
        }
        Some(t) => SecretString::new(t),
        None => provisor_domain::token::generate().secret,
    };
    st.store
        .set_auto_token(d.actor(), d.id(), Some(&token))
        .await?;
    auto_view(&st, &d, token, q.category).await
}

async fn auto_view(
    st: &AppState,
    d: &InDomain,
    token: SecretString,
    category: Option<String>,
) -> ApiResult<Json<AutoProvisioning>> {
    let url = match category {
        Some(c) => {
            st.store.category(d.id(), &c).await?;
            Some(
                st.phones
                    .auto_provisioning_url(&d.domain.name, token.expose(), &c),
            )
        }
        None => None,
    };
    Ok(Json(AutoProvisioning { token, url }))
}

/// The token and, for `category`, the URL to roll out.
#[utoipa::path(get, path = "/api/v1/domains/{domain}/auto-provisioning", tag = "codes", params(("domain" = String, Path), AutoQuery),
    responses((status = 200, body = AutoProvisioning), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn get_auto(
    State(st): State<AppState>,
    d: InDomain,
    Query(q): Query<AutoQuery>,
) -> ApiResult<Json<AutoProvisioning>> {
    let token = st
        .store
        .auto_token(d.id())
        .await?
        .ok_or(ApiError::NotFound("auto-provisioning token"))?;
    auto_view(&st, &d, token, q.category).await
}

/// Turns automatic provisioning off.
#[utoipa::path(delete, path = "/api/v1/domains/{domain}/auto-provisioning", tag = "codes", params(("domain" = String, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_auto(State(st): State<AppState>, d: InDomain) -> ApiResult<StatusCode> {
    st.store.set_auto_token(d.actor(), d.id(), None).await?;
    Ok(StatusCode::NO_CONTENT)
}
