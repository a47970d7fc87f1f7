use axum::extract::State;
use axum::http::StatusCode;
use provisor_domain::Mac;
use provisor_domain::model::{Device, DeviceFilter, DevicePatch, NewDevice};
use provisor_store::{DeviceDetail, Page, PageRequest};
use serde::Deserialize;

use crate::AppState;
use crate::auth::InDomain;
use crate::error::{ApiResult, Problem};
use crate::extract::{Json, Path, Query};

#[derive(Deserialize)]
pub struct DeviceQuery {
    #[serde(flatten)]
    filter: DeviceFilter,
    #[serde(default)]
    limit: Option<String>,
    #[serde(default)]
    after: Option<String>,
}

/// Parses the page parameters here: `serde(flatten)` reads query values as text.
fn page_of(q: &DeviceQuery) -> ApiResult<PageRequest> {
    let number = |field: &str, v: &str| {
        v.parse()
            .map_err(|_| provisor_domain::Invalid::new(field, format!("'{v}' is not a number")))
    };
    let limit = q.limit.as_deref().map(|v| number("limit", v)).transpose()?;
    let after = q.after.as_deref().map(|v| number("after", v)).transpose()?;
    Ok(PageRequest {
        limit: limit.map_or(PageRequest::default().limit, |l| l as u32),
        after,
    }
    .validate()?)
}

/// Devices of the domain, filtered by MAC, owner, category or state.
#[utoipa::path(get, path = "/api/v1/domains/{domain}/devices", tag = "devices", params(("domain" = String, Path), DeviceFilter, PageRequest),
    responses((status = 200, body = Page<Device>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn list(
    State(st): State<AppState>,
    d: InDomain,
    Query(q): Query<DeviceQuery>,
) -> ApiResult<Json<Page<Device>>> {
    let page = page_of(&q)?;
    Ok(Json(st.store.list_devices(d.id(), &q.filter, page).await?))
}

/// Adds a device; `lines` names SIP accounts of the domain in line order.
#[utoipa::path(post, path = "/api/v1/domains/{domain}/devices", tag = "devices", params(("domain" = String, Path)), request_body = NewDevice,
    responses((status = 201, body = DeviceDetail), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn create(
    State(st): State<AppState>,
    d: InDomain,
    Json(new): Json<NewDevice>,
) -> ApiResult<(StatusCode, Json<DeviceDetail>)> {
    let device = st
        .store
        .create_device(d.actor(), d.id(), &new.validate()?)
        .await?;
    let detail = super::provisioning::detail(&st, &d, device.mac).await?;
    Ok((StatusCode::CREATED, Json(detail)))
}

#[utoipa::path(get, path = "/api/v1/domains/{domain}/devices/{mac}", tag = "devices", params(("domain" = String, Path), ("mac" = String, Path)),
    responses((status = 200, body = DeviceDetail), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn get(
    State(st): State<AppState>,
    d: InDomain,
    Path((_, mac)): Path<(String, String)>,
) -> ApiResult<Json<DeviceDetail>> {
    Ok(Json(
        super::provisioning::detail(&st, &d, Mac::parse(&mac)?).await?,
    ))
}

/// Changes a device; `lines` replaces all lines, `null` clears `category` or `user`.
#[utoipa::path(patch, path = "/api/v1/domains/{domain}/devices/{mac}", tag = "devices", params(("domain" = String, Path), ("mac" = String, Path)),
    request_body = DevicePatch,
    responses((status = 200, body = Device), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn update(
    State(st): State<AppState>,
    d: InDomain,
    Path((_, mac)): Path<(String, String)>,
    Json(patch): Json<DevicePatch>,
) -> ApiResult<Json<Device>> {
    Ok(Json(
        st.store
            .update_device(d.actor(), d.id(), Mac::parse(&mac)?, &patch.validate()?)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/domains/{domain}/devices/{mac}", tag = "devices", params(("domain" = String, Path), ("mac" = String, Path)),
    responses((status = 204), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn delete(
    State(st): State<AppState>,
    d: InDomain,
    Path((_, mac)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    st.store
        .delete_device(d.actor(), d.id(), Mac::parse(&mac)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
