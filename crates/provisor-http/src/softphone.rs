//! Softphone apps signing in with their user's portal login and receiving the user's SIP
//! accounts, which the user never sees.
//!
//! Acrobits Cloud Softphone: `GET|POST /acrobits/provisioning` with `username`, `password`
//! (and `cloud_id`) initially, and `install` (ours, from the Account XML) on
//! re-provisioning; the answer is the Account XML of the user's first SIP account with the
//! re-provisioning web service, `Last-Modified`, and 304 for `If-Modified-Since` when
//! nothing changed. A disabled user, a revoked installation, or credentials that no longer
//! work on re-provisioning get 410 (`extProvLogoutStatusCode`): the app logs out.
//!
//! SessionTalk / SessionCloud:
//! `GET /sessiontalk/provisioning?username=user@domain&password=…&reprovision=…&deviceId=…`.
//!
//! Every answer is 2xx JSON `{update, sipaccounts, errmsg}` (the app shows `errmsg`).
//! `update` is true on an installation's first provisioning and whenever what its user
//! would get has changed since it last got it; a disabled user, or a revoked installation,
//! gets `update: true` with no accounts, so the app removes them. Each installation
//! (`deviceId`) is recorded as a device of its user (`installs`).

use axum::Router;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::header::{CONTENT_TYPE, LAST_MODIFIED, USER_AGENT};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
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
        .route("/acrobits/provisioning", get(acrobits).post(acrobits))
        .route("/linphone/{token}", get(linphone))
}

/// The query of a SessionTalk provisioning request (axum's `Query` reads it).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionTalkQuery {
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

// ---------------------------------------------------------------------------------------
// Acrobits Cloud Softphone

/// The status that logs the app out (`extProvLogoutStatusCode`).
const ACROBITS_LOGOUT: u16 = 410;
/// How often the app provisions again, in seconds.
const ACROBITS_INTERVAL: u32 = 3600;

/// What an Acrobits provisioning request carries, in its query (GET) or form (POST).
#[derive(Deserialize)]
pub struct AcrobitsQuery {
    #[serde(default, alias = "cloud_username")]
    username: String,
    #[serde(default, alias = "cloud_password")]
    password: String,
    /// Ours (`X-install-id` in the Account XML), on re-provisioning.
    #[serde(default)]
    install: String,
}

impl AcrobitsQuery {
    /// The fields of a GET's query or a POST's form; all empty if it cannot be read.
    pub fn from_request(method: &axum::http::Method, query: Option<&str>, body: &[u8]) -> Self {
        let raw = if method == axum::http::Method::POST {
            String::from_utf8_lossy(body)
        } else {
            std::borrow::Cow::Borrowed(query.unwrap_or_default())
        };
        serde_urlencoded::from_str(&raw).unwrap_or(AcrobitsQuery {
            username: String::new(),
            password: String::new(),
            install: String::new(),
        })
    }
}

fn acrobits_error(status: u16, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<error><message>{}</message></error>\n",
        provisor_render::escape_xml(message)
    );
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
    (
        status,
        [(CONTENT_TYPE, "application/xml; charset=utf-8")],
        body,
    )
        .into_response()
}

/// The public base URL of this server (HTTPS where configured).
pub(crate) fn public_base(st: &AppState) -> String {
    st.phones
        .options()
        .public_base()
        .trim_end_matches('/')
        .to_owned()
}

/// The Web Service Definitions an operator pastes into the Cloud Softphone portal.
pub fn acrobits_definitions(base: &str) -> serde_json::Value {
    serde_json::json!({
        "InitialProvisioningUrl": format!("{base}/acrobits/provisioning?cloud_username=%username%&cloud_password=%password%&cloud_id=%fullcode%"),
        "InitialProvisioningMethod": "GET",
    })
}

/// The Account XML of the user's first SIP account, with the re-provisioning web service.
fn acrobits_account(
    u: &SoftphoneUser,
    login: &str,
    password: &str,
    install: &str,
    base: &str,
) -> Option<String> {
    let a = u.accounts.first()?;
    let s = settings::merge(&u.layers);
    let registrar = if a.registrar.is_empty() {
        s.get("registrar")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    } else {
        a.registrar.clone()
    };
    let name = [&a.display_name, &u.user.display_name, &a.sip_user]
        .into_iter()
        .find(|n| !n.is_empty())
        .cloned()
        .unwrap_or_default();
    let transport = a.transport.as_str();
    let allow_message = u8::from(s.get("messaging").and_then(Value::as_bool).unwrap_or(false));
    let reprovision = format!(
        "{base}/acrobits/provisioning?cloud_username=%account[cloud_username]%&cloud_password=%account[cloud_password]%&install=%account[X-install-id]%"
    );
    let node = |k: &str, v: &str| format!("  <{k}>{}</{k}>\n", provisor_render::escape_xml(v));
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<account>\n");
    xml += &node("title", &name);
    xml += &node("username", &a.sip_user);
    xml += &node("password", a.password.expose());
    xml += &node(
        "authUsername",
        if a.auth_user.is_empty() {
            &a.sip_user
        } else {
            &a.auth_user
        },
    );
    xml += &node("host", &registrar);
    if !a.outbound_proxy.is_empty() {
        xml += &node("proxy", &a.outbound_proxy);
    }
    xml += &node("transport", transport);
    xml += &node("userDisplayName", &name);
    xml += &node("cloud_username", login);
    xml += &node("cloud_password", password);
    xml += &node("allowMessage", &allow_message.to_string());
    xml += &node("extProvUrl", &reprovision);
    xml += &node("extProvInterval", &ACROBITS_INTERVAL.to_string());
    xml += &node("extProvLogoutStatusCode", &ACROBITS_LOGOUT.to_string());
    xml += &node("X-install-id", install);
    xml += "</account>\n";
    Some(xml)
}

fn http_date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

async fn acrobits(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    method: axum::http::Method,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let q = AcrobitsQuery::from_request(&method, query.as_deref(), &body);
    let reprovisioning = !q.install.is_empty();
    let ip = canonical_ip(peer.addr.ip()).to_string();
    if q.username.is_empty() || q.password.is_empty() {
        return Ok(acrobits_error(403, "Enter your user name and password."));
    }
    let portal = match portal_login(&st, &ip, &q.username, q.password.clone()).await? {
        Login::Valid(p) => p,
        Login::Disabled(_) => {
            return Ok(acrobits_error(ACROBITS_LOGOUT, "This account is disabled."));
        }
        // Credentials that worked once and no longer do: log the app out.
        Login::Refused if reprovisioning => {
            return Ok(acrobits_error(ACROBITS_LOGOUT, "Sign in again."));
        }
        Login::Refused => return Ok(acrobits_error(403, WRONG_LOGIN)),
        Login::Locked(_) => {
            return Ok(acrobits_error(
                429,
                "Too many failed sign-ins; try again later.",
            ));
        }
    };
    let install = if reprovisioning {
        q.install.chars().take(64).collect::<String>()
    } else {
        token::generate().secret.expose()[4..28].to_owned()
    };
    let user_agent = headers
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let seen = st
        .store
        .install_contact(
            portal.domain.id,
            &portal.username,
            "acrobits",
            &install,
            &ip,
            user_agent,
        )
        .await?;
    if seen.revoked {
        return Ok(acrobits_error(
            ACROBITS_LOGOUT,
            "This installation was signed out.",
        ));
    }
    let user = st
        .store
        .softphone_user(portal.domain.id, &portal.username)
        .await?;
    let login = format!("{}@{}", portal.username, portal.domain.name);
    let Some(xml) = acrobits_account(&user, &login, &q.password, &install, &public_base(&st))
    else {
        return Ok(acrobits_error(
            404,
            "There is no SIP account for this user.",
        ));
    };
    let digest = token::digest(&xml);
    let modified = if seen.digest == digest && seen.delivered_at > 0 {
        seen.delivered_at
    } else {
        st.store.install_delivered(seen.id, &digest).await?;
        chrono::Utc::now().timestamp_millis()
    };
    let since = headers
        .get(axum::http::header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
        .map(|t| t.timestamp());
    let last_modified = http_date(modified);
    if seen.digest == digest && since.is_some_and(|s| s >= modified / 1000) {
        return Ok((StatusCode::NOT_MODIFIED, [(LAST_MODIFIED, last_modified)]).into_response());
    }
    Ok((
        [
            (CONTENT_TYPE, "application/xml; charset=utf-8".to_owned()),
            (LAST_MODIFIED, last_modified),
        ],
        xml,
    )
        .into_response())
}

// ---------------------------------------------------------------------------------------
// Linphone

/// A new Linphone installation of the user: its provisioning URL carries a random token,
/// kept only as a digest (the URL is shown once).
pub async fn new_linphone(
    st: &AppState,
    d: provisor_domain::model::DomainId,
    username: &str,
) -> ApiResult<String> {
    let secret = token::generate().secret;
    let token = &secret.expose()[4..];
    st.store
        .install_contact(d, username, "linphone", &token::digest(token), "", "")
        .await?;
    Ok(format!("{}/linphone/{token}", public_base(st)))
}

/// The lpconfig XML of the user's SIP accounts: a `proxy_N` and an `auth_info_N` each.
fn linphone_config(u: &SoftphoneUser) -> String {
    use provisor_render::escape_xml as x;
    let s = settings::merge(&u.layers);
    let default_registrar = s
        .get("registrar")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <config xmlns=\"http://www.linphone.org/xsds/lpconfig.xsd\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
         xsi:schemaLocation=\"http://www.linphone.org/xsds/lpconfig.xsd lpconfig.xsd\">\n",
    );
    let entry = |name: &str, value: &str| {
        format!(
            "    <entry name=\"{name}\" overwrite=\"true\">{}</entry>\n",
            x(value)
        )
    };
    for (i, a) in u.accounts.iter().enumerate() {
        let registrar = if a.registrar.is_empty() {
            &default_registrar
        } else {
            &a.registrar
        };
        let domain = registrar.split(':').next().unwrap_or(registrar);
        let transport = a.transport.as_str();
        let proxy = if a.outbound_proxy.is_empty() {
            registrar
        } else {
            &a.outbound_proxy
        };
        let name = [&a.display_name, &u.user.display_name]
            .into_iter()
            .find(|n| !n.is_empty())
            .cloned()
            .unwrap_or_default();
        let identity = if name.is_empty() {
            format!("<sip:{}@{domain}>", a.sip_user)
        } else {
            format!(
                "\"{}\" <sip:{}@{domain}>",
                name.replace('"', "'"),
                a.sip_user
            )
        };
        xml += &format!("  <section name=\"proxy_{i}\">\n");
        xml += &entry("reg_proxy", &format!("<sip:{proxy};transport={transport}>"));
        xml += &entry("reg_identity", &identity);
        xml += &entry("reg_expires", "3600");
        xml += &entry("reg_sendregister", "1");
        xml += "  </section>\n";
        xml += &format!("  <section name=\"auth_info_{i}\">\n");
        xml += &entry("username", &a.sip_user);
        xml += &entry(
            "userid",
            if a.auth_user.is_empty() {
                &a.sip_user
            } else {
                &a.auth_user
            },
        );
        xml += &entry("passwd", a.password.expose());
        xml += &entry("domain", domain);
        xml += "  </section>\n";
    }
    xml += "</config>\n";
    xml
}

async fn linphone(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
    axum::extract::Path(token): axum::extract::Path<String>,
) -> ApiResult<Response> {
    let not_found = || StatusCode::NOT_FOUND.into_response();
    if token.len() > 64 {
        return Ok(not_found());
    }
    let Some((d, username, seen)) = st
        .store
        .find_install("linphone", &token::digest(&token))
        .await?
    else {
        return Ok(not_found());
    };
    let user = st.store.softphone_user(d, &username).await?;
    if seen.revoked || !user.user.enabled {
        return Ok(not_found());
    }
    let ip = canonical_ip(peer.addr.ip()).to_string();
    let user_agent = headers
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    st.store
        .install_contact(
            d,
            &username,
            "linphone",
            &token::digest(&token),
            &ip,
            user_agent,
        )
        .await?;
    Ok((
        [(CONTENT_TYPE, "application/xml; charset=utf-8")],
        linphone_config(&user),
    )
        .into_response())
}
