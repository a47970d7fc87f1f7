use axum::extract::State;
use axum::http::StatusCode;
use provisor_domain::model::{NewSipAccount, SipAccount, SipAccountPatch};
use provisor_store::{Page, PageRequest};
use serde::Deserialize;

use crate::AppState;
use crate::auth::InDomain;
use crate::error::{ApiResult, Problem};
use crate::extract::{Json, Path, Query};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccountFilter {
    /// Only this user's accounts.
    user: Option<String>,
    /// Items per page, 1 to 1000 (default 100).
    #[serde(default = "provisor_store::default_limit")]
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: u32,
    after: Option<i64>,
}

/// SIP accounts of the domain. Passwords are never returned.
#[utoipa::path(get, path = "/api/v1/domains/{domain}/accounts", tag = "accounts", params(("domain" = String, Path), AccountFilter),
    responses((status = 200, body = Page<SipAccount>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn list(
    State(st): State<AppState>,
    d: InDomain,
    Query(f): Query<AccountFilter>,
) -> ApiResult<Json<Page<SipAccount>>> {
    let page = PageRequest {
        limit: f.limit,
        after: f.after,
    }
    .validate()?;
    Ok(Json(
        st.store
            .list_accounts(d.id(), f.user.as_deref(), page)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/domains/{domain}/users/{username}/accounts", tag = "accounts",
    params(("domain" = String, Path), ("username" = String, Path), PageRequest),
    responses((status = 200, body = Page<SipAccount>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn list_for_user(
    State(st): State<AppState>,
    d: InDomain,
    Path((_, username)): Path<(String, String)>,
    Query(page): Query<PageRequest>,
) -> ApiResult<Json<Page<SipAccount>>> {
    st.store.user(d.id(), &username).await?;
    Ok(Json(
        st.store
            .list_accounts(d.id(), Some(&username), page.validate()?)
            .await?,
    ))
}

/// Gives a user a SIP account; the password is stored encrypted.
#[utoipa::path(post, path = "/api/v1/domains/{domain}/users/{username}/accounts", tag = "accounts",
    params(("domain" = String, Path), ("username" = String, Path)), request_body = NewSipAccount,
    responses((status = 201, body = SipAccount), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn create(
    State(st): State<AppState>,
    d: InDomain,
    Path((_, username)): Path<(String, String)>,
    Json(new): Json<NewSipAccount>,
) -> ApiResult<(StatusCode, Json<SipAccount>)> {
    let account = st
        .store
        .create_account(d.actor(), d.id(), &username, &new.validate()?)
        .await?;
    Ok((StatusCode::CREATED, Json(account)))
}

#[utoipa::path(get, path = "/api/v1/domains/{domain}/accounts/{id}", tag = "accounts", params(("domain" = String, Path), ("id" = i64, Path)),
    responses((status = 200, body = SipAccount), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn get(
    State(st): State<AppState>,
    d: InDomain,
    Path((_, id)): Path<(String, i64)>,
) -> ApiResult<Json<SipAccount>> {
    Ok(Json(st.store.account(d.id(), id).await?))
}

#[utoipa::path(patch, path = "/api/v1/domains/{domain}/accounts/{id}", tag = "accounts", params(("domain" = String, Path), ("id" = i64, Path)),
    request_body = SipAccountPatch,
    responses((status = 200, body = SipAccount), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn update(
    State(st): State<AppState>,
    d: InDomain,
    Path((_, id)): Path<(String, i64)>,
    Json(patch): Json<SipAccountPatch>,
) -> ApiResult<Json<SipAccount>> {
    Ok(Json(
        st.store
            .update_account(d.actor(), d.id(), id, &patch.validate()?)
            .await?,
    ))
}

/// Deletes a SIP account (refused while it is a line on a device).
#[utoipa::path(delete, path = "/api/v1/domains/{domain}/accounts/{id}", tag = "accounts", params(("domain" = String, Path), ("id" = i64, Path)),
    responses((status = 204), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete(
    State(st): State<AppState>,
    d: InDomain,
    Path((_, id)): Path<(String, i64)>,
) -> ApiResult<StatusCode> {
    st.store.delete_account(d.actor(), d.id(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}
