use axum::extract::State;
use axum::http::StatusCode;
use provisor_domain::model::{Category, CategoryPatch, NewCategory};
use provisor_store::{Page, PageRequest};

use crate::AppState;
use crate::auth::InDomain;
use crate::error::{ApiResult, Problem};
use crate::extract::{Json, Path, Query};

#[utoipa::path(get, path = "/api/v1/domains/{domain}/categories", tag = "categories", params(("domain" = String, Path), PageRequest),
    responses((status = 200, body = Page<Category>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn list(
    State(st): State<AppState>,
    d: InDomain,
    Query(page): Query<PageRequest>,
) -> ApiResult<Json<Page<Category>>> {
    Ok(Json(
        st.store.list_categories(d.id(), page.validate()?).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/domains/{domain}/categories", tag = "categories", params(("domain" = String, Path)), request_body = NewCategory,
    responses((status = 201, body = Category), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn create(
    State(st): State<AppState>,
    d: InDomain,
    Json(new): Json<NewCategory>,
) -> ApiResult<(StatusCode, Json<Category>)> {
    let category = st
        .store
        .create_category(d.actor(), d.id(), &new.validate()?)
        .await?;
    Ok((StatusCode::CREATED, Json(category)))
}

#[utoipa::path(get, path = "/api/v1/domains/{domain}/categories/{category}", tag = "categories",
    params(("domain" = String, Path), ("category" = String, Path)),
    responses((status = 200, body = Category), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn get(
    State(st): State<AppState>,
    d: InDomain,
    Path((_, name)): Path<(String, String)>,
) -> ApiResult<Json<Category>> {
    Ok(Json(st.store.category(d.id(), &name).await?))
}

/// Renames a category, changes its provisioning flag or replaces its settings layer.
#[utoipa::path(patch, path = "/api/v1/domains/{domain}/categories/{category}", tag = "categories",
    params(("domain" = String, Path), ("category" = String, Path)), request_body = CategoryPatch,
    responses((status = 200, body = Category), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn update(
    State(st): State<AppState>,
    d: InDomain,
    Path((_, name)): Path<(String, String)>,
    Json(patch): Json<CategoryPatch>,
) -> ApiResult<Json<Category>> {
    Ok(Json(
        st.store
            .update_category(d.actor(), d.id(), &name, &patch.validate()?)
            .await?,
    ))
}

/// Deletes a category; its devices stay, without a category.
#[utoipa::path(delete, path = "/api/v1/domains/{domain}/categories/{category}", tag = "categories",
    params(("domain" = String, Path), ("category" = String, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn delete(
    State(st): State<AppState>,
    d: InDomain,
    Path((_, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    st.store.delete_category(d.actor(), d.id(), &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
