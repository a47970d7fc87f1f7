//! A domain's innovaphone integration: the App object password the PBX logs in with, the
//! admin password sysclients get, the PBX's domain name, the default category of
//! third-party phones; and the URLs to configure on the PBX and the devices.

use axum::extract::State;
use provisor_domain::Mac;
use provisor_domain::innovaphone::{InnovaphoneDevice, InnovaphonePatch, InnovaphoneSettings};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::InDomain;
use crate::error::{ApiResult, Problem};
use crate::extract::{Json, Path};

#[derive(Serialize, ToSchema)]
pub struct InnovaphoneView {
    #[serde(flatten)]
    settings: InnovaphoneSettings,
    /// The URL of the PBX's App object (websocket flag set; Password = `app_password`).
    app_url: String,
    /// Where innovaphone devices register (the Devices URL).
    sysclient_url: String,
}

fn view(st: &AppState, d: &InDomain, settings: InnovaphoneSettings) -> InnovaphoneView {
    let options = st.phones.options();
    let base = options.public_base();
    let ws = base
        .strip_prefix("https://")
        .map(|rest| format!("wss://{rest}"))
        .or_else(|| {
            base.strip_prefix("http://")
                .map(|rest| format!("ws://{rest}"))
        })
        .unwrap_or_else(|| base.to_owned());
    let domain = crate::url_component(&d.domain.name);
    InnovaphoneView {
        settings,
        app_url: format!("{ws}{}/{domain}", options.innovaphone_path),
        sysclient_url: format!("{ws}/{domain}/devices/sysclients"),
    }
}

/// The domain's innovaphone settings (secrets only as set or not) and endpoint URLs.
#[utoipa::path(get, path = "/api/v1/domains/{domain}/innovaphone", tag = "innovaphone", params(("domain" = String, Path)),
    responses((status = 200, body = InnovaphoneView), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn get(State(st): State<AppState>, d: InDomain) -> ApiResult<Json<InnovaphoneView>> {
    let settings = st.store.innovaphone(d.id()).await?;
    Ok(Json(view(&st, &d, settings)))
}

/// Changes the domain's innovaphone settings: absent fields stay, `null` (or an empty
/// password) removes. A new app password applies to the next PBX login.
#[utoipa::path(put, path = "/api/v1/domains/{domain}/innovaphone", tag = "innovaphone", params(("domain" = String, Path)),
    request_body = InnovaphonePatch,
    responses((status = 200, body = InnovaphoneView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn put(
    State(st): State<AppState>,
    d: InDomain,
    Json(patch): Json<InnovaphonePatch>,
) -> ApiResult<Json<InnovaphoneView>> {
    let settings = st
        .store
        .set_innovaphone(d.actor(), d.id(), &patch.validate()?)
        .await?;
    Ok(Json(view(&st, &d, settings)))
}

/// What is known of a device that came through innovaphone: the PBX's Hardware ID, or what
/// a sysclient reported (product, version, interfaces) and when it was last seen.
#[utoipa::path(get, path = "/api/v1/domains/{domain}/devices/{mac}/innovaphone", tag = "innovaphone", params(("domain" = String, Path), ("mac" = String, Path)),
    responses((status = 200, body = InnovaphoneDevice), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn device(
    State(st): State<AppState>,
    d: InDomain,
    Path((_, mac)): Path<(String, String)>,
) -> ApiResult<Json<InnovaphoneDevice>> {
    let mac = Mac::parse(&mac)?;
    Ok(Json(st.store.innovaphone_device(d.id(), mac).await?))
}
