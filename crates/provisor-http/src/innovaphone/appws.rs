//! The AppWebsocket server side (protocols.md §A): `AppChallenge` → a fresh challenge;
//! `AppLogin` checked against the domain's app password, the `info` object hashed as it
//! was received; then `ProvisioningPhone` messages, whose password is decrypted with this
//! connection's session key. Nothing but the login is accepted before the login.

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, State};
use axum::response::Response;
use provisor_domain::innovaphone::{self as inno, LoginFields, PbxPhone};
use provisor_domain::model::{Actor, NewSipAccount, NewUser, Transport};
use provisor_domain::phone::canonical_ip;
use provisor_domain::secret::SecretString;
use provisor_domain::{Mac, code};
use provisor_store::{InnovaphoneDomain, StoreError};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::{Attempt, End, Incoming, LOGIN_WITHIN, POLICY, PROTOCOL, accept, answer, close, next};
use crate::AppState;
use crate::net::Peer;

/// The service Provisor provides to the PBX.
const PROVISIONING_API: &str = "com.innovaphone.provisioning";

pub(super) async fn upgrade(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Path(domain): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    let ip = canonical_ip(peer.addr.ip()).to_string();
    let mut c = Connection {
        st,
        ip,
        domain,
        challenge: None,
        session: None,
    };
    accept(ws, move |socket| async move { c.run(socket).await })
}

/// A field read as text whatever its JSON type (a number as its digits, `null` as empty),
/// so a message with an odd field is answered with a refusal rather than dropped.
fn text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s,
        Value::Null => String::new(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    })
}

/// Every field any message here carries; absent ones are empty.
#[derive(Deserialize)]
pub struct Msg<'a> {
    #[serde(default)]
    mt: String,
    #[serde(default)]
    src: Option<Value>,
    // AppLogin
    #[serde(default, deserialize_with = "text")]
    app: String,
    #[serde(default, deserialize_with = "text")]
    domain: String,
    #[serde(default, deserialize_with = "text")]
    sip: String,
    #[serde(default, deserialize_with = "text")]
    guid: String,
    #[serde(default, deserialize_with = "text")]
    dn: String,
    #[serde(default, deserialize_with = "text")]
    digest: String,
    #[serde(default, borrow)]
    info: Option<&'a RawValue>,
    // ProvisioningPhone
    #[serde(default, deserialize_with = "text")]
    mac: String,
    #[serde(default, deserialize_with = "text")]
    code: String,
    #[serde(default, deserialize_with = "text")]
    hwid: String,
    #[serde(default, deserialize_with = "text")]
    usename: String,
    #[serde(default, deserialize_with = "text")]
    cn: String,
    #[serde(default, deserialize_with = "text")]
    seed1: String,
    #[serde(default, deserialize_with = "text")]
    password: String,
    #[serde(default, deserialize_with = "text")]
    dns: String,
}

impl<'a> Msg<'a> {
    /// One text message; `None` if it is not JSON of the expected form (the connection is
    /// closed).
    pub fn decode(text: &'a str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }

    /// The type, `mt`.
    pub fn kind(&self) -> &str {
        &self.mt
    }

    /// The fields an `AppLogin`'s digest covers, `info` as received.
    pub fn login_fields(&self) -> LoginFields<'_> {
        LoginFields {
            app: &self.app,
            domain: &self.domain,
            sip: &self.sip,
            guid: &self.guid,
            dn: &self.dn,
            info: self.info.map(RawValue::get),
        }
    }

    /// The phone a `ProvisioningPhone` hands over, for the connection's domain (`name`, and
    /// `pbx_domain` where the PBX names it otherwise) with the password decrypted under the
    /// session `key`; else the refusal's error and text.
    pub fn pbx_phone(
        &self,
        name: &str,
        pbx_domain: &str,
        key: &str,
    ) -> Result<PbxPhone, (&'static str, String)> {
        let m = self;
        let refuse = |error: &'static str, text: &str| Err((error, text.to_owned()));
        let pbx_name = m.domain.to_ascii_lowercase();
        if pbx_name != name && (pbx_domain.is_empty() || pbx_name != pbx_domain) {
            return refuse(
                "unknown-domain",
                "the domain is not this connection's domain",
            );
        }
        let Ok(mac) = Mac::parse(&m.mac) else {
            return refuse("invalid-mac", "mac is not a MAC address");
        };
        let password = match inno::decrypt(&m.seed1, key, &m.password) {
            // RC4 has no integrity check: a wrong key shows as bytes that are no text.
            Ok(p) if !p.is_empty() && !p.expose().chars().any(char::is_control) => p,
            _ => {
                return refuse(
                    "undecryptable",
                    "the password does not decrypt with this connection's session key",
                );
            }
        };
        let user = NewUser {
            username: m.usename.clone(),
            display_name: m.cn.clone(),
            email: String::new(),
            password: None,
            enabled: true,
            settings: Default::default(),
        };
        let registrar = if m.dns.trim().is_empty() {
            pbx_name.clone()
        } else {
            m.dns.clone()
        };
        let account = NewSipAccount {
            sip_user: m.usename.clone(),
            auth_user: m.usename.clone(),
            password,
            display_name: m.cn.clone(),
            registrar,
            outbound_proxy: String::new(),
            transport: Transport::default(),
            options: Default::default(),
        };
        let (user, account) = match (user.validate(), account.validate()) {
            (Ok(u), Ok(a)) => (u, a),
            (Err(e), _) | (_, Err(e)) => return refuse("invalid-field", &e.to_string()),
        };
        Ok(PbxPhone {
            mac,
            hwid: m.hwid.chars().take(64).collect(),
            code: code::normalize(&m.code),
            user,
            account,
        })
    }
}

struct Session {
    domain: InnovaphoneDomain,
    key: SecretString,
    app: String,
}

struct Connection {
    st: AppState,
    ip: String,
    /// The domain named in the URL.
    domain: String,
    challenge: Option<String>,
    session: Option<Session>,
}

/// A result message answering `mt`, echoing the request's `src`.
fn result(mt: &str, src: &Option<Value>, mut body: Value) -> Message {
    body["mt"] = format!("{mt}Result").into();
    if let Some(src) = src {
        body["src"] = src.clone();
    }
    Message::Text(body.to_string().into())
}

fn refusal(mt: &str, src: &Option<Value>, error: &str, text: &str) -> Message {
    result(
        mt,
        src,
        json!({"ok": false, "error": error, "errorText": text}),
    )
}

/// What the service info says of Provisor.
fn service_info() -> Value {
    json!({"apis": {PROVISIONING_API: {"title": "Provisor"}}})
}

impl Connection {
    async fn run(&mut self, mut socket: WebSocket) {
        let deadline = tokio::time::Instant::now() + LOGIN_WITHIN;
        loop {
            let pending = self.session.is_none().then_some(deadline);
            let text = match next(&mut socket, pending).await {
                Some(Incoming::Text(t)) => t,
                Some(Incoming::Binary(_)) => {
                    close(&mut socket, PROTOCOL, "JSON text messages only").await;
                    return;
                }
                None => return,
            };
            let Some(msg) = Msg::decode(text.as_str()) else {
                tracing::info!(
                    ip = self.ip,
                    "an AppWebsocket message is not JSON of the expected form"
                );
                close(&mut socket, PROTOCOL, "not a message").await;
                return;
            };
            let (reply, end) = self.handle(&msg).await;
            let pending = self.session.is_none().then_some(deadline);
            if !answer(&mut socket, reply.into_iter().collect(), end, pending).await {
                return;
            }
        }
    }

    /// The answer to one message, and whether the connection ends after it.
    async fn handle(&mut self, m: &Msg<'_>) -> (Option<Message>, End) {
        match (m.mt.as_str(), self.session.is_some()) {
            ("AppChallenge", false) => {
                let challenge = inno::challenge();
                let reply = result("AppChallenge", &m.src, json!({"challenge": challenge}));
                self.challenge = Some(challenge);
                (Some(reply), None)
            }
            ("AppLogin", false) => self.login(m).await,
            (_, false) => (
                Some(refusal(&m.mt, &m.src, "login-required", "log in first")),
                Some((POLICY, "login required")),
            ),
            ("PbxInfo", true) => {
                tracing::info!(domain = self.domain, pbx_domain = m.domain, "PBX connected");
                (None, None)
            }
            ("AppInfo" | "ServiceInfo", true) => (
                Some(result(
                    &m.mt,
                    &m.src,
                    json!({"app": m.app, "info": service_info()}),
                )),
                None,
            ),
            ("ProvisioningPhone", true) => (Some(self.provisioning_phone(m).await), None),
            (other, true) => {
                tracing::debug!(
                    mt = other,
                    "an AppWebsocket message type Provisor does not handle"
                );
                (None, None)
            }
        }
    }

    async fn login(&mut self, m: &Msg<'_>) -> (Option<Message>, End) {
        let refused = |text| {
            (
                Some(refusal("AppLogin", &m.src, "login-failed", text)),
                Some((POLICY, "login failed")),
            )
        };
        // One login per challenge.
        let Some(challenge) = self.challenge.take() else {
            return refused("ask for a challenge first");
        };
        let attempt = Attempt::new(&self.st, &self.ip, &self.domain, "appwebsocket");
        let Ok(counted) = attempt.count().await else {
            return refused("too many failed logins; try again later");
        };
        let domain = match self.st.store.innovaphone_domain(&self.domain).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "an AppLogin could not be checked");
                return (
                    Some(refusal(
                        "AppLogin",
                        &m.src,
                        "unavailable",
                        "try again later",
                    )),
                    Some((super::SERVER_ERROR, "unavailable")),
                );
            }
        };
        let fields = m.login_fields();
        // An unknown domain, or one without an app password, is refused like a wrong one.
        let good = domain.and_then(|d| {
            let password = d.app_password.clone()?;
            let expected = inno::login_digest(&fields, &challenge, password.expose());
            inno::digest_matches(&expected, &m.digest).then_some((d, password))
        });
        let Some((domain, password)) = good else {
            attempt.failed("wrong digest").await;
            return refused("the login is not correct");
        };
        attempt.succeeded(counted).await;
        tracing::info!(
            ip = self.ip,
            domain = domain.name,
            app = m.app,
            "PBX logged in"
        );
        self.session = Some(Session {
            key: inno::session_key(&challenge, password.expose()),
            app: m.app.clone(),
            domain,
        });
        (Some(result("AppLogin", &m.src, json!({"ok": true}))), None)
    }

    /// Takes over a third-party phone: the user, their SIP account, the device.
    async fn provisioning_phone(&self, m: &Msg<'_>) -> Message {
        let Some(session) = &self.session else {
            return refusal(&m.mt, &m.src, "login-required", "log in first");
        };
        let d = &session.domain;
        let refuse = |error: &str, text: &str| {
            tracing::info!(
                domain = d.name,
                mac = m.mac,
                error,
                "a ProvisioningPhone was refused: {text}"
            );
            refusal(&m.mt, &m.src, error, text)
        };
        let phone = match m.pbx_phone(&d.name, &d.pbx_domain, session.key.expose()) {
            Ok(p) => p,
            Err((error, text)) => return refuse(error, &text),
        };
        let mac = phone.mac;
        let actor = Actor(format!("innovaphone:{}@{}", session.app, self.ip));
        match self
            .st
            .store
            .provision_pbx_phone(&actor, d.id, &phone)
            .await
        {
            Ok(r) => {
                tracing::info!(domain = d.name, %mac, user = phone.user.username, created = r.created, "a PBX handed a phone over");
                result(
                    &m.mt,
                    &m.src,
                    json!({"ok": true, "mac": mac, "created": r.created}),
                )
            }
            Err(StoreError::Conflict(text)) => refuse("conflict", &text),
            Err(StoreError::Invalid(i)) => refuse("invalid-field", &i.to_string()),
            Err(e) => {
                tracing::error!(error = %e, "a ProvisioningPhone could not be stored");
                refusal(&m.mt, &m.src, "unavailable", "try again later")
            }
        }
    }
}
