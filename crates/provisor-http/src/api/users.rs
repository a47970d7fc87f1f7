use axum::extract::State;
use axum::http::StatusCode;
use provisor_domain::model::{NewUser, User, UserPatch};
use provisor_domain::password;
use provisor_domain::secret::SecretString;
use provisor_store::{Page, PageRequest};

use super::blocking;
use crate::AppState;
use crate::auth::InDomain;
use crate::error::{ApiResult, Problem};
use crate::extract::{Json, Path, Query};

/// Hashes a new portal password off the executor (argon2id is slow on purpose).
pub(crate) async fn hash_password(pw: Option<SecretString>) -> ApiResult<Option<String>> {
    match pw {
        None => Ok(None),
        Some(pw) => Ok(Some(blocking(move || password::hash(&pw)).await??)),
    }
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserSearch {
    /// Only users whose username, display name or e-mail address holds this (ignoring case).
    search: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/domains/{domain}/users", tag = "users", params(("domain" = String, Path), PageRequest, UserSearch),
    responses((status = 200, body = Page<User>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn list(
    State(st): State<AppState>,
    d: InDomain,
    Query(page): Query<PageRequest>,
    Query(q): Query<UserSearch>,
) -> ApiResult<Json<Page<User>>> {
    let search = q.search.as_deref().map(str::trim).filter(|s| !s.is_empty());
    Ok(Json(
        st.store
            .list_users(d.id(), search, page.validate()?)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/domains/{domain}/users", tag = "users", params(("domain" = String, Path)), request_body = NewUser,
    responses((status = 201, body = User), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn create(
    State(st): State<AppState>,
    d: InDomain,
    Json(new): Json<NewUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    let new = new.validate()?;
    let hash = hash_password(new.password.clone()).await?;
    let user = st
        .store
        .create_user(d.actor(), d.id(), &new, hash.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(user)))
}

#[utoipa::path(get, path = "/api/v1/domains/{domain}/users/{username}", tag = "users",
    params(("domain" = String, Path), ("username" = String, Path)),
    responses((status = 200, body = User), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn get(
    State(st): State<AppState>,
    d: InDomain,
    Path((_, username)): Path<(String, String)>,
) -> ApiResult<Json<User>> {
    Ok(Json(st.store.user(d.id(), &username).await?))
}

/// Changes a user; a `password` sets a new portal password.
#[utoipa::path(patch, path = "/api/v1/domains/{domain}/users/{username}", tag = "users",
    params(("domain" = String, Path), ("username" = String, Path)), request_body = UserPatch,
    responses((status = 200, body = User), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn update(
    State(st): State<AppState>,
    d: InDomain,
    Path((_, username)): Path<(String, String)>,
    Json(patch): Json<UserPatch>,
) -> ApiResult<Json<User>> {
    let patch = patch.validate()?;
    let hash = hash_password(patch.password.clone()).await?;
    Ok(Json(
        st.store
            .update_user(d.actor(), d.id(), &username, &patch, hash.as_deref())
            .await?,
    ))
}

/// Deletes a user with their SIP accounts (refused while one is a line on a device).
#[utoipa::path(delete, path = "/api/v1/domains/{domain}/users/{username}", tag = "users",
    params(("domain" = String, Path), ("username" = String, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete(
    State(st): State<AppState>,
    d: InDomain,
    Path((_, username)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    st.store.delete_user(d.actor(), d.id(), &username).await?;
    Ok(StatusCode::NO_CONTENT)
}
