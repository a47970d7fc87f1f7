//! A device's provisioning, for its admins: its URL and token, arming, its secrets, why
//! its fetches were refused, what it uploaded; and the unknown MACs seen in a domain.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use provisor_domain::Mac;
use provisor_store::{
    DeviceDetail, Page, PageRequest, RefusalEntry, UnassignedDevice, UploadEntry, device_detail,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::InDomain;
use crate::error::{ApiResult, Problem};
use crate::extract::{Json, Path, Query};

/// The device with its provisioning URL.
pub(super) async fn detail(st: &AppState, d: &InDomain, mac: Mac) -> ApiResult<DeviceDetail> {
    let phones = st.phones.clone();
    Ok(device_detail(st.store.as_ref(), d.id(), mac, |t| phones.device_url(t)).await?)
}

/// Gives the device a new URL token; the previous one works for the domain's
/// `token_grace_minutes` more, so a phone fetching meanwhile is not cut off.
#[utoipa::path(post, path = "/api/v1/domains/{domain}/devices/{mac}/token", tag = "devices", params(("domain" = String, Path), ("mac" = String, Path)),
    responses((status = 200, body = DeviceDetail), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn rotate_token(
    State(st): State<AppState>,
    d: InDomain,
    Path((_, mac)): Path<(String, String)>,
) -> ApiResult<Json<DeviceDetail>> {
    let mac = Mac::parse(&mac)?;
    st.store.rotate_device_token(d.actor(), d.id(), mac).await?;
    Ok(Json(detail(&st, &d, mac).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ArmRequest {
    /// How long the window stays open; the domain's `arm_minutes` if absent, 0 disarms.
    minutes: Option<u32>,
}

/// Arms the device: its next fetch without credentials (within the window) gets a file
/// that moves it to its tokenized URL. For a phone reset to factory settings.
#[utoipa::path(post, path = "/api/v1/domains/{domain}/devices/{mac}/arm", tag = "devices", params(("domain" = String, Path), ("mac" = String, Path)),
    request_body = ArmRequest,
    responses((status = 200, body = DeviceDetail), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn arm(
    State(st): State<AppState>,
    d: InDomain,
    Path((_, mac)): Path<(String, String)>,
    Json(req): Json<ArmRequest>,
) -> ApiResult<Json<DeviceDetail>> {
    let mac = Mac::parse(&mac)?;
    st.store
        .arm_device(d.actor(), d.id(), mac, req.minutes)
        .await?;
    Ok(Json(detail(&st, &d, mac).await?))
}

#[derive(Serialize, ToSchema)]
pub struct DeviceSecretsView {
    /// The tokenized URL (see `provisioning.url`).
    url: Option<String>,
    /// HTTP digest: the user name is the MAC, this the password.
    digest_user: String,
    digest_password: Option<String>,
    /// The password of the phone's own web interface (user `admin`).
    admin_password: Option<String>,
}

/// The device's secrets: digest credentials and its web interface's admin password.
#[utoipa::path(get, path = "/api/v1/domains/{domain}/devices/{mac}/secrets", tag = "devices", params(("domain" = String, Path), ("mac" = String, Path)),
    responses((status = 200, body = DeviceSecretsView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn secrets(
    State(st): State<AppState>,
    d: InDomain,
    Path((_, mac)): Path<(String, String)>,
) -> ApiResult<Json<DeviceSecretsView>> {
    let mac = Mac::parse(&mac)?;
    let c = st.store.device_credentials(d.id(), mac).await?;
    let reveal =
        |s: Option<provisor_domain::secret::SecretString>| s.map(|s| s.expose().to_owned());
    Ok(Json(DeviceSecretsView {
        url: c.token.as_ref().map(|t| st.phones.device_url(t.expose())),
        digest_user: mac.to_string(),
        digest_password: reveal(c.fetch_password),
        admin_password: reveal(c.admin_password),
    }))
}

/// Why the device's recent fetches were refused, newest first.
#[utoipa::path(get, path = "/api/v1/domains/{domain}/devices/{mac}/refusals", tag = "devices", params(("domain" = String, Path), ("mac" = String, Path), PageRequest),
    responses((status = 200, body = Page<RefusalEntry>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn refusals(
    State(st): State<AppState>,
    d: InDomain,
    Path((_, mac)): Path<(String, String)>,
    Query(page): Query<PageRequest>,
) -> ApiResult<Json<Page<RefusalEntry>>> {
    let mac = Mac::parse(&mac)?;
    Ok(Json(
        st.store
            .list_refusals(d.id(), mac, page.validate()?)
            .await?,
    ))
}

/// Files the device uploaded (logs), the latest of each name.
#[utoipa::path(get, path = "/api/v1/domains/{domain}/devices/{mac}/uploads", tag = "devices", params(("domain" = String, Path), ("mac" = String, Path)),
    responses((status = 200, body = Vec<UploadEntry>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn uploads(
    State(st): State<AppState>,
    d: InDomain,
    Path((_, mac)): Path<(String, String)>,
) -> ApiResult<Json<Vec<UploadEntry>>> {
    Ok(Json(
        st.store.list_uploads(d.id(), Mac::parse(&mac)?).await?,
    ))
}

/// One uploaded file, as the device sent it.
#[utoipa::path(get, path = "/api/v1/domains/{domain}/devices/{mac}/uploads/{name}", tag = "devices",
    params(("domain" = String, Path), ("mac" = String, Path), ("name" = String, Path)),
    responses((status = 200, content_type = "application/octet-stream", body = inline(super::doc::Binary)), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn upload(
    State(st): State<AppState>,
    d: InDomain,
    Path((_, mac, name)): Path<(String, String, String)>,
) -> ApiResult<impl IntoResponse> {
    let body = st.store.upload(d.id(), Mac::parse(&mac)?, &name).await?;
    Ok(([(CONTENT_TYPE, "application/octet-stream")], body))
}

/// Unknown MACs that fetched from the domain's networks (policy `record_unassigned`), to be
/// claimed by adding them as devices.
#[utoipa::path(get, path = "/api/v1/domains/{domain}/unassigned", tag = "devices", params(("domain" = String, Path), PageRequest),
    responses((status = 200, body = Page<UnassignedDevice>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn unassigned(
    State(st): State<AppState>,
    d: InDomain,
    Query(page): Query<PageRequest>,
) -> ApiResult<Json<Page<UnassignedDevice>>> {
    Ok(Json(
        st.store.list_unassigned(d.id(), page.validate()?).await?,
    ))
}
