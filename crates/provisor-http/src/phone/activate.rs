//! `POST {base}/activate`: a device or a script redeems a provisioning code for a MAC
//! (form or JSON: `code`, `mac`, optional `model`, `firmware`, `bootcode`, `ip`).
//!
//! Every refusal (unknown, used, expired or another domain's code; a MAC that has a device
//! already) gets the same 403; too many failures from the address, or overall, get 429.

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use provisor_domain::Mac;
use provisor_domain::code::Redemption;
use provisor_domain::phone::canonical_ip;
use serde::Deserialize;
use serde_json::json;

use super::CodeOutcome;
use crate::AppState;
use crate::net::Peer;

pub const MAX_BODY: usize = 8 * 1024;

#[derive(Deserialize)]
struct Activation {
    code: String,
    mac: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    firmware: String,
    #[serde(default)]
    bootcode: String,
    #[serde(default)]
    ip: String,
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn bad_request(why: &str) -> Response {
    answer(StatusCode::BAD_REQUEST, json!({"error": why}))
}

pub(super) async fn activate(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    let parsed: Result<Activation, String> = if json {
        serde_json::from_slice(&body).map_err(|e| e.to_string())
    } else {
        serde_urlencoded::from_bytes(&body).map_err(|e| e.to_string())
    };
    let a = match parsed {
        Ok(a) => a,
        Err(why) => return bad_request(&format!("code and mac are needed: {why}")),
    };
    let Ok(mac) = Mac::parse(&a.mac) else {
        return bad_request("mac is not a MAC address");
    };
    let catalog = st.phones.renderer().catalog();
    let vendor = headers
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| catalog.user_agent(ua))
        .map(|agent| agent.vendor.id.clone())
        .unwrap_or_default();
    let redemption = Redemption {
        mac,
        model: a.model,
        firmware: a.firmware,
        bootcode: a.bootcode,
        reported_ip: a.ip,
        ip: Some(canonical_ip(peer.addr.ip())),
        vendor,
        ..Redemption::new(mac)
    };
    match st
        .phones
        .redeem(st.store.as_ref(), &a.code, &redemption)
        .await
    {
        Ok(CodeOutcome::Redeemed(r)) => {
            let url = st
                .store
                .device_credentials(r.domain, mac)
                .await
                .ok()
                .and_then(|c| c.token)
                .map(|t| st.phones.device_url(t.expose()));
            answer(
                StatusCode::OK,
                json!({"mac": mac, "domain": r.domain_name, "provisioning_url": url}),
            )
        }
        Ok(CodeOutcome::Refused) => answer(
            StatusCode::FORBIDDEN,
            json!({"error": "the code is not valid for this device"}),
        ),
        Ok(CodeOutcome::Locked(wait)) => {
            let mut response = answer(
                StatusCode::TOO_MANY_REQUESTS,
                json!({"error": "too many wrong codes; try again later"}),
            );
            if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                response.headers_mut().insert(RETRY_AFTER, v);
            }
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "a code could not be redeemed");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}
