//! Rollouts: one provisioning code per user, for an admin to hand out, listed with each
//! user's state (Pending, Registered with MAC and time, Expired), also as CSV.

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use provisor_domain::code::{Rollout, RolloutEntry, rollout_csv};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::InDomain;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Json, Path};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRollout {
    /// The category the phones go into.
    category: Option<String>,
    /// The phone (template or kind) handed out, e.g. `Yealink T54W`; for the admin's list.
    #[serde(default)]
    phone: String,
    /// The users, one code each.
    users: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RolloutView {
    rollout: Rollout,
    entries: Vec<RolloutEntry>,
}

/// One code per user, valid for the domain's `phone_policy.rollout_seconds` (7 days); all users or,
/// if one is unknown, none.
#[utoipa::path(post, path = "/api/v1/domains/{domain}/rollouts", tag = "codes", params(("domain" = String, Path)),
    request_body = NewRollout,
    responses((status = 201, body = RolloutView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn create(
    State(st): State<AppState>,
    d: InDomain,
    Json(new): Json<NewRollout>,
) -> ApiResult<(StatusCode, Json<RolloutView>)> {
    let rollout = st
        .store
        .create_rollout(
            d.actor(),
            d.id(),
            new.category.as_deref(),
            &new.phone,
            &new.users,
        )
        .await?;
    let (rollout, entries) = st.store.rollout(d.id(), rollout.id).await?;
    Ok((StatusCode::CREATED, Json(RolloutView { rollout, entries })))
}

/// The rollout with every user's code and state; `{id}.csv` gives the list as CSV (user,
/// display name, code, valid until, state, MAC).
#[utoipa::path(get, path = "/api/v1/domains/{domain}/rollouts/{id}", tag = "codes",
    params(("domain" = String, Path), ("id" = String, Path, description = "the rollout's id, or the id with `.csv` for CSV")),
    responses((status = 200, description = "The rollout (as CSV for an id with `.csv`)",
        content((RolloutView = "application/json"), (String = "text/csv"))), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn get(
    State(st): State<AppState>,
    d: InDomain,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (id, csv) = rollout_id(&id).ok_or(ApiError::NotFound("rollout"))?;
    let (rollout, entries) = st.store.rollout(d.id(), id).await?;
    if csv {
        return Ok(csv_answer(id, &entries));
    }
    Ok(Json(RolloutView { rollout, entries }).into_response())
}

/// A rollout's id as a path gives it: `12`, or `12.csv` for its CSV.
pub(crate) fn rollout_id(text: &str) -> Option<(i64, bool)> {
    let (id, csv) = match text.strip_suffix(".csv") {
        Some(id) => (id, true),
        None => (text, false),
    };
    id.parse().ok().map(|id| (id, csv))
}

/// The rollout's list as a CSV download.
pub(crate) fn csv_answer(id: i64, entries: &[RolloutEntry]) -> Response {
    (
        [
            (CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"rollout-{id}.csv\""),
            ),
        ],
        rollout_csv(entries),
    )
        .into_response()
}
