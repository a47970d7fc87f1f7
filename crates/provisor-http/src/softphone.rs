//! Softphone apps signing in with their user's portal login and receiving the user's SIP
//! accounts, which the user never sees. SessionTalk / SessionCloud for now:
//! `GET /sessiontalk/provisioning?username=user@domain&password=…&reprovision=…&deviceId=…`.
//!
//! Every answer is 2xx JSON `{update, sipaccounts, errmsg}` (the app shows `errmsg`).
//! `update` is true on an installation's first provisioning and whenever what its user
//! would get has changed since it last got it; a disabled user, or a revoked installation,
//! gets `update: true` with no accounts, so the app removes them. Each installation
//! (`deviceId`) is recorded as a device of its user (`installs`).

use axum::Router;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::HeaderMap;
use axum::http::header::USER_AGENT;
use axum::routing::get;
use provisor_domain::phone::canonical_ip;
use provisor_domain::settings;
use provisor_domain::token;
use provisor_store::SoftphoneUser;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::AppState;
use crate::auth::{Login, portal_login};
use crate::error::ApiResult;
use crate::net::Peer;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sessiontalk/provisioning", get(sessiontalk))
        .route("/sessiontalk/provisioning/", get(sessiontalk))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionTalkQuery {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    device_id: String,
}

#[derive(Serialize, PartialEq, Eq, Debug, Clone)]
struct SessionTalkAccount {
    sipusername: String,
    sippassword: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    subdomain: String,
    authusername: String,
    transport: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    proxy: String,
    srtp: &'static str,
    messaging: &'static str,
    video: &'static str,
    callrecording: &'static str,
}

#[derive(Serialize)]
struct SessionTalkAnswer {
    update: bool,
    sipaccounts: Vec<SessionTalkAccount>,
    errmsg: String,
}

fn answer(update: bool, sipaccounts: Vec<SessionTalkAccount>, errmsg: &str) -> axum::Json<Value> {
    axum::Json(
        serde_json::to_value(SessionTalkAnswer {
            update,
            sipaccounts,
            errmsg: errmsg.to_owned(),
        })
        .unwrap_or_default(),
    )
}

/// `Enabled`/`Disabled` from a boolean setting, `default` if unset.
fn flag(settings: &serde_json::Map<String, Value>, key: &str, default: bool) -> &'static str {
    if settings
        .get(key)
        .and_then(Value::as_bool)
        .unwrap_or(default)
    {
        "Enabled"
    } else {
        "Disabled"
    }
}

/// What the user's SessionTalk app gets: each SIP account, with the features their
/// settings (`srtp`, `messaging`, `video`, `call_recording`, `sessiontalk_subdomain`) say.
fn sessiontalk_accounts(u: &SoftphoneUser) -> Vec<SessionTalkAccount> {
    let s = settings::merge(&u.layers);
    let subdomain = s
        .get("sessiontalk_subdomain")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    u.accounts
        .iter()
        .map(|a| {
            let tls = a.transport == provisor_domain::model::Transport::Tls;
            SessionTalkAccount {
                sipusername: a.sip_user.clone(),
                sippassword: a.password.expose().to_owned(),
                subdomain: subdomain.clone(),
                authusername: if a.auth_user.is_empty() {
                    a.sip_user.clone()
                } else {
                    a.auth_user.clone()
                },
                transport: match a.transport {
                    provisor_domain::model::Transport::Udp => "UDP",
                    provisor_domain::model::Transport::Tcp => "TCP",
                    provisor_domain::model::Transport::Tls => "TLS",
                },
                proxy: if a.outbound_proxy.is_empty() {
                    a.registrar.clone()
                } else {
                    a.outbound_proxy.clone()
                },
                srtp: flag(&s, "srtp", tls),
                messaging: flag(&s, "messaging", false),
                video: flag(&s, "video", true),
                callrecording: flag(&s, "call_recording", false),
            }
        })
        .collect()
}

const WRONG_LOGIN: &str = "The user name or password is not correct.";

async fn sessiontalk(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
    Query(q): Query<SessionTalkQuery>,
) -> ApiResult<axum::Json<Value>> {
    let ip = canonical_ip(peer.addr.ip()).to_string();
    if q.username.is_empty() || q.password.is_empty() || q.device_id.is_empty() {
        return Ok(answer(
            false,
            Vec::new(),
            "Enter your user name and password.",
        ));
    }
    let (portal, disabled) = match portal_login(&st, &ip, &q.username, q.password).await? {
        Login::Valid(p) => (p, false),
        Login::Disabled(p) => (p, true),
        Login::Refused => return Ok(answer(false, Vec::new(), WRONG_LOGIN)),
        Login::Locked(_) => {
            return Ok(answer(
                false,
                Vec::new(),
                "Too many failed sign-ins; try again later.",
            ));
        }
    };
    let user_agent = headers
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let device_id: String = q.device_id.chars().take(200).collect();
    let seen = st
        .store
        .install_contact(
            portal.domain.id,
            &portal.username,
            "sessiontalk",
            &device_id,
            &ip,
            user_agent,
        )
        .await?;
    let accounts = if disabled || seen.revoked {
        Vec::new()
    } else {
        sessiontalk_accounts(
            &st.store
                .softphone_user(portal.domain.id, &portal.username)
                .await?,
        )
    };
    let digest = token::digest(&serde_json::to_string(&accounts).unwrap_or_default());
    let update = seen.new || seen.digest != digest;
    if update {
        st.store.install_delivered(seen.id, &digest).await?;
    }
    tracing::info!(
        user = portal.username,
        domain = portal.domain.name,
        update,
        "SessionTalk provisioning"
    );
    Ok(answer(update, accounts, ""))
}
