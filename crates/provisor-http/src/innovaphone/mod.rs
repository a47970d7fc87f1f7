//! innovaphone: the AppWebsocket endpoint a PBX's App object connects to
//! (`{innovaphone_path}/{domain}`, `appws`), where Provisor provides
//! `com.innovaphone.provisioning` and takes over third-party phones, and the sysclient
//! endpoint innovaphone devices register at (`/{domain}/devices/sysclients`, `sysclient`).
//!
//! Both accept the WebSocket for any domain name and refuse later, the same way whether
//! the domain exists or not. Logins are counted ahead of their check (and taken back when
//! they succeed) against the source address's budget of guesses (shared with codes and
//! portal logins) and, for addresses that have not logged in there in the last day, the
//! endpoint's budget for the domain. Before a peer proves itself, everything it does
//! (reads and writes) ends at the 30 s deadline.

pub mod appws;
mod sysclient;

use std::time::Duration;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::routing::get;

use crate::AppState;
use crate::limit::Limit;

/// Largest message either endpoint reads.
const MAX_MESSAGE: usize = 64 * 1024;
/// How long a peer has to prove itself after connecting.
const LOGIN_WITHIN: Duration = Duration::from_secs(30);

pub fn router(app_path: &str) -> Router<AppState> {
    Router::new()
        .route(&format!("{app_path}/{{domain}}"), get(appws::upgrade))
        .route("/{domain}/devices/sysclients", get(sysclient::upgrade))
}

/// How long an address that logged in stays exempt from its domain's lock.
const TRUSTED_FOR: Duration = Duration::from_secs(24 * 3600);

/// One endpoint's login attempt by `ip` at `domain`, for the failure limits: the address's
/// budget (shared with codes and portal logins) and, unless the address logged in here
/// before, the endpoint's budget for the domain, so guesses spread over many addresses are
/// limited but cannot lock out the PBX (or devices) that logged in before.
struct Attempt<'a> {
    st: &'a AppState,
    ip: String,
    domain: String,
    endpoint: &'static str,
}

/// Failures counted ahead of a check (so attempts at the same moment all count), taken
/// back if it succeeds.
struct Counted(Vec<(String, Limit, bool)>);

impl<'a> Attempt<'a> {
    fn new(st: &'a AppState, ip: &str, domain: &str, endpoint: &'static str) -> Self {
        let domain: String = domain.to_ascii_lowercase().chars().take(100).collect();
        Self {
            st,
            ip: ip.to_owned(),
            domain,
            endpoint,
        }
    }

    fn trusted_key(&self) -> String {
        format!("{}-ok:{}:{}", self.endpoint, self.domain, self.ip)
    }

    async fn keys(&self) -> Vec<(String, Limit)> {
        let limits = self.st.phones.options().code_limits;
        let mut keys = vec![(format!("guess-ip:{}", self.ip), limits.per_ip)];
        if !self
            .st
            .phones
            .limiter()
            .remembered(&self.trusted_key())
            .await
        {
            keys.push((
                format!("{}-domain:{}", self.endpoint, self.domain),
                limits.per_domain,
            ));
        }
        keys
    }

    /// Counts the attempt ahead, or how long attempts are refused.
    async fn count(&self) -> Result<Counted, Duration> {
        let keys = self.keys().await;
        match self.st.phones.limiter().attempt(&keys).await {
            Ok(locking) => Ok(Counted(
                keys.into_iter()
                    .zip(locking)
                    .map(|((k, l), locking)| (k, l, locking))
                    .collect(),
            )),
            Err(wait) => {
                tracing::info!(
                    ip = self.ip,
                    domain = self.domain,
                    endpoint = self.endpoint,
                    wait_seconds = wait.as_secs(),
                    "innovaphone login not tried: too many failures"
                );
                Err(wait)
            }
        }
    }

    /// The check succeeded: the failures counted ahead are taken back, and the address is
    /// exempt from the domain's lock for a day.
    async fn succeeded(&self, counted: Counted) {
        let limiter = self.st.phones.limiter();
        for (k, l, locking) in counted.0 {
            limiter.refund(&k, l, locking).await;
        }
        limiter.remember(&self.trusted_key(), TRUSTED_FOR).await;
    }

    /// The check failed (its failures stay counted): logged and audited.
    async fn failed(&self, reason: &str) {
        tracing::info!(
            ip = self.ip,
            domain = self.domain,
            endpoint = self.endpoint,
            reason,
            "an innovaphone login was refused"
        );
        let audit = self
            .st
            .store
            .record_audit(
                &provisor_domain::model::Actor(format!("innovaphone:{}", self.ip)),
                "innovaphone.refused",
                &self.domain,
                serde_json::json!({"ip": self.ip, "endpoint": self.endpoint, "reason": reason}),
            )
            .await;
        if let Err(e) = audit {
            tracing::warn!(error = %e, "a refused innovaphone login could not be audited");
        }
    }
}

/// Takes the WebSocket with the endpoints' size limits and runs `serve` on it.
fn accept<F>(
    ws: axum::extract::ws::WebSocketUpgrade,
    serve: impl FnOnce(WebSocket) -> F + Send + 'static,
) -> axum::response::Response
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    ws.max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(serve)
}

/// A data message from the peer.
enum Incoming {
    Text(axum::extract::ws::Utf8Bytes),
    Binary(axum::body::Bytes),
}

/// How a connection ends after an answer: a close code and reason.
type End = Option<(u16, &'static str)>;

/// The next text or binary message; `None` once the peer is gone, or once `deadline` (the
/// time to prove itself, while it has not) has passed, which closes the connection.
async fn next(socket: &mut WebSocket, deadline: Option<tokio::time::Instant>) -> Option<Incoming> {
    loop {
        let next = match deadline {
            None => socket.recv().await,
            Some(deadline) => match tokio::time::timeout_at(deadline, socket.recv()).await {
                Ok(next) => next,
                Err(_) => {
                    let bye = close(socket, POLICY, "log in first");
                    let _ = tokio::time::timeout(Duration::from_secs(1), bye).await;
                    return None;
                }
            },
        };
        return match next {
            Some(Ok(Message::Text(t))) => Some(Incoming::Text(t)),
            Some(Ok(Message::Binary(b))) => Some(Incoming::Binary(b)),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => None,
        };
    }
}

/// Sends the answers, then closes if `end` says so; whether the connection goes on. Before
/// the peer proved itself (`deadline`), a peer that does not read is dropped at the
/// deadline too.
async fn answer(
    socket: &mut WebSocket,
    replies: Vec<Message>,
    end: End,
    deadline: Option<tokio::time::Instant>,
) -> bool {
    let send = async {
        for reply in replies {
            if socket.send(reply).await.is_err() {
                return false;
            }
        }
        match end {
            Some((code, reason)) => {
                close(socket, code, reason).await;
                false
            }
            None => true,
        }
    };
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, send)
            .await
            .unwrap_or(false),
        None => send.await,
    }
}

/// Closes with `code` (1008 policy, 1002 protocol, 1011 server error) and a reason.
async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}

const POLICY: u16 = 1008;
const PROTOCOL: u16 = 1002;
const SERVER_ERROR: u16 = 1011;
