//! innovaphone: the AppWebsocket endpoint a PBX's App object connects to
//! (`{innovaphone_path}/{domain}`, `appws`), where Provisor provides
//! `com.innovaphone.provisioning` and takes over third-party phones, and the sysclient
//! endpoint innovaphone devices register at (`/{domain}/devices/sysclients`, `sysclient`).
//!
//! Both accept the WebSocket for any domain name and refuse later, the same way whether
//! the domain exists or not. Wrong digests count against the source address's budget of
//! guesses (shared with codes and portal logins) and against the domain.

mod appws;
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

/// The failure-limit keys of a peer at `ip` trying domain `domain`.
fn keys(ip: &str, domain: &str) -> [String; 2] {
    [
        format!("guess-ip:{ip}"),
        format!("innovaphone-domain:{}", domain.to_ascii_lowercase()),
    ]
}

fn limits(st: &AppState) -> [Limit; 2] {
    let l = st.phones.options().code_limits;
    [l.per_ip, l.per_domain]
}

/// How much longer this peer's logins are refused, if they are.
fn locked(st: &AppState, ip: &str, domain: &str) -> Option<Duration> {
    let limiter = st.phones.limiter();
    keys(ip, domain).iter().find_map(|k| limiter.locked(k))
}

/// Counts a failed login and audits it.
async fn failed(st: &AppState, ip: &str, domain: &str, what: &str, reason: &str) {
    let limiter = st.phones.limiter();
    let mut now_locked = false;
    for (key, limit) in keys(ip, domain).iter().zip(limits(st)) {
        now_locked |= limiter.fail(key, limit);
    }
    tracing::info!(
        ip,
        domain,
        what,
        reason,
        locked = now_locked,
        "an innovaphone login was refused"
    );
    let audit = st
        .store
        .record_audit(
            &provisor_domain::model::Actor(format!("innovaphone:{ip}")),
            "innovaphone.refused",
            domain,
            serde_json::json!({"ip": ip, "endpoint": what, "reason": reason}),
        )
        .await;
    if let Err(e) = audit {
        tracing::warn!(error = %e, "a refused innovaphone login could not be audited");
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
                    close(socket, POLICY, "log in first").await;
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

/// Sends the answers, then closes if `end` says so; whether the connection goes on.
async fn answer(socket: &mut WebSocket, replies: Vec<Message>, end: End) -> bool {
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
