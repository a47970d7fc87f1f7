//! Update jobs: firmware and configuration changes a domain's devices get when they check
//! in, staged by share or device list, paused, resumed, cancelled, with progress per
//! device; and firmware pins, which win over jobs.

use axum::extract::State;
use axum::http::StatusCode;
use provisor_domain::Mac;
use provisor_domain::job::{FirmwarePin, Job, JobPatch, NewJob, ProgressCounts};
use provisor_store::JobDevice;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::InDomain;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Json, Path};

#[derive(Serialize, ToSchema)]
pub struct JobView {
    #[serde(flatten)]
    job: Job,
    /// Devices by progress: pending (targeted, not yet offered), offered, applied, failed.
    progress: ProgressCounts,
}

fn id_of(id: &str) -> ApiResult<i64> {
    id.parse().map_err(|_| ApiError::NotFound("job"))
}

/// A job: `software` (a firmware store file, whose contents are kept as they are now, or
/// an external URL; the target version) or `config` (`ntp`, `timezone`, `language`,
/// `codecs`, `dial_plan`, `custom` with its `params`), for a category (or the whole
/// domain), optionally some models, a share of devices (`percent`) or a list (`devices`).
#[utoipa::path(post, path = "/api/v1/domains/{domain}/jobs", tag = "jobs", params(("domain" = String, Path)),
    request_body = NewJob,
    responses((status = 201, body = JobView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn create(
    State(st): State<AppState>,
    d: InDomain,
    Json(new): Json<NewJob>,
) -> ApiResult<(StatusCode, Json<JobView>)> {
    let job = st
        .store
        .create_job(d.actor(), d.id(), &new.validate()?)
        .await?;
    let (job, progress) = st.store.job(d.id(), job.id).await?;
    Ok((StatusCode::CREATED, Json(JobView { job, progress })))
}

/// The domain's jobs, newest first, with their progress.
#[utoipa::path(get, path = "/api/v1/domains/{domain}/jobs", tag = "jobs", params(("domain" = String, Path)),
    responses((status = 200, body = Vec<JobView>), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn list(State(st): State<AppState>, d: InDomain) -> ApiResult<Json<Vec<JobView>>> {
    let jobs = st.store.list_jobs(d.id()).await?;
    Ok(Json(
        jobs.into_iter()
            .map(|(job, progress)| JobView { job, progress })
            .collect(),
    ))
}

#[utoipa::path(get, path = "/api/v1/domains/{domain}/jobs/{id}", tag = "jobs", params(("domain" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = JobView), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn get(
    State(st): State<AppState>,
    d: InDomain,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<Json<JobView>> {
    let (job, progress) = st.store.job(d.id(), id_of(&id)?).await?;
    Ok(Json(JobView { job, progress }))
}

/// Pauses (devices that have it keep it, no one else gets it), resumes, or cancels a job
/// (final: devices fall back to the previous matching job), or changes its share.
#[utoipa::path(patch, path = "/api/v1/domains/{domain}/jobs/{id}", tag = "jobs", params(("domain" = String, Path), ("id" = String, Path)),
    request_body = JobPatch,
    responses((status = 200, body = JobView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn update(
    State(st): State<AppState>,
    d: InDomain,
    Path((_, id)): Path<(String, String)>,
    Json(patch): Json<JobPatch>,
) -> ApiResult<Json<JobView>> {
    let id = id_of(&id)?;
    st.store
        .update_job(d.actor(), d.id(), id, &patch.validate()?)
        .await?;
    let (job, progress) = st.store.job(d.id(), id).await?;
    Ok(Json(JobView { job, progress }))
}

/// The devices that were offered the job, with their progress.
#[utoipa::path(get, path = "/api/v1/domains/{domain}/jobs/{id}/devices", tag = "jobs", params(("domain" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = Vec<JobDevice>), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn devices(
    State(st): State<AppState>,
    d: InDomain,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<Json<Vec<JobDevice>>> {
    Ok(Json(st.store.job_devices(d.id(), id_of(&id)?).await?))
}

/// The firmware the device is pinned to, if any.
#[utoipa::path(get, path = "/api/v1/domains/{domain}/devices/{mac}/firmware-pin", tag = "jobs", params(("domain" = String, Path), ("mac" = String, Path)),
    responses((status = 200, body = FirmwarePin), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn get_pin(
    State(st): State<AppState>,
    d: InDomain,
    Path((_, mac)): Path<(String, String)>,
) -> ApiResult<Json<FirmwarePin>> {
    let pin = st.store.firmware_pin(d.id(), Mac::parse(&mac)?).await?;
    Ok(Json(pin.ok_or(ApiError::NotFound("firmware pin"))?))
}

/// Pins the device to a firmware: it gets this and no software job until unpinned.
#[utoipa::path(put, path = "/api/v1/domains/{domain}/devices/{mac}/firmware-pin", tag = "jobs", params(("domain" = String, Path), ("mac" = String, Path)),
    request_body = FirmwarePin,
    responses((status = 200, body = FirmwarePin), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn put_pin(
    State(st): State<AppState>,
    d: InDomain,
    Path((_, mac)): Path<(String, String)>,
    Json(pin): Json<FirmwarePin>,
) -> ApiResult<Json<FirmwarePin>> {
    let pin = pin.validate()?;
    st.store
        .set_firmware_pin(d.actor(), d.id(), Mac::parse(&mac)?, Some(&pin))
        .await?;
    Ok(Json(pin))
}

#[utoipa::path(delete, path = "/api/v1/domains/{domain}/devices/{mac}/firmware-pin", tag = "jobs", params(("domain" = String, Path), ("mac" = String, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_pin(
    State(st): State<AppState>,
    d: InDomain,
    Path((_, mac)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    st.store
        .set_firmware_pin(d.actor(), d.id(), Mac::parse(&mac)?, None)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
