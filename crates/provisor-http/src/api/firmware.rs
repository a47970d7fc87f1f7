//! Firmware files for phones (operators): upload, list, delete. Phones fetch them under
//! their token, at `{base}/{token}/firmware/{name}`.

use axum::extract::State;
use axum::http::StatusCode;
use provisor_domain::model::{Firmware, firmware_name};

use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Body, Json, Path};
use crate::firmware;

/// Stores the body as firmware `name`, replacing a file of that name. Its SHA-256 is
/// recorded and is the file's ETag.
#[utoipa::path(put, path = "/api/v1/firmware/{name}", tag = "firmware", params(("name" = String, Path)),
    request_body(content = inline(super::doc::Binary), content_type = "application/octet-stream"),
    responses((status = 200, body = Firmware), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 413, body = Problem)))]
pub async fn put(
    State(st): State<AppState>,
    p: Principal,
    Path(name): Path<String>,
    Body(bytes): Body,
) -> ApiResult<Json<Firmware>> {
    p.require_operator()?;
    let name = firmware_name(&name)?;
    if bytes.is_empty() {
        return Err(provisor_domain::Invalid::new("body", "the firmware file is empty").into());
    }
    let dir = &st.phones.options().firmware_dir;
    let sha = firmware::save(dir, &bytes)
        .await
        .map_err(|e| ApiError::Internal(format!("cannot store firmware: {e}")))?;
    let (entry, orphan) = st
        .store
        .put_firmware(&p.actor, &name, &sha, bytes.len() as u64)
        .await?;
    if let Some(orphan) = orphan {
        firmware::remove(dir, &orphan).await;
    }
    Ok(Json(entry))
}

#[utoipa::path(get, path = "/api/v1/firmware", tag = "firmware",
    responses((status = 200, body = Vec<Firmware>), (status = 401, body = Problem)))]
pub async fn list(State(st): State<AppState>, _p: Principal) -> ApiResult<Json<Vec<Firmware>>> {
    Ok(Json(st.store.list_firmware().await?))
}

#[utoipa::path(delete, path = "/api/v1/firmware/{name}", tag = "firmware", params(("name" = String, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete(
    State(st): State<AppState>,
    p: Principal,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    p.require_operator()?;
    if let Some(orphan) = st.store.delete_firmware(&p.actor, &name).await? {
        firmware::remove(&st.phones.options().firmware_dir, &orphan).await;
    }
    Ok(StatusCode::NO_CONTENT)
}
