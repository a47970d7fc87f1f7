//! The sysclient endpoint (protocols.md §B.2), binary WebSocket messages:
//!
//! - Identify with a `provisioningCode`, from a device no domain has: the code is redeemed
//!   (`Phones::redeem`, under the code limits, and only a code of the URL's domain); the
//!   device joins the code's category with the code's user's lines, and gets its sysclient
//!   password (0x0001), then the domain's admin password (0x0003) if there is one;
//! - Identify from a device of the domain: a challenge (0x0002); the device identifies
//!   again with `digest = sha256(id:product:version:challenge:password)`; then the admin
//!   password, and for a non-innovaphone device (`other`) an empty configuration (0x0006,
//!   `last`). What it reported (product, version, interfaces) is kept on its device.
//!
//! An Identify without a code or digest gets a challenge whether the device is known or not
//! (and whether the domain exists), so devices cannot be listed; a digest is then checked
//! under the failure limits (counted ahead). Every refusal closes the connection with the
//! same reason, "not registered"; a bad frame with "not a sysclient message". Once proven,
//! a connection speaks for its own MAC only. Nothing is written on a refusal.

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, State};
use axum::response::Response;
use provisor_domain::Mac;
use provisor_domain::code::Redemption;
use provisor_domain::innovaphone::{
    self as inno, Frame, Identify, SysclientJoin, SysclientReport, admin,
};
use provisor_domain::model::DomainId;
use provisor_domain::phone::canonical_ip;
use provisor_domain::secret::SecretString;
use provisor_store::InnovaphoneDomain;
use serde_json::json;

use super::{
    Attempt, End, Incoming, LOGIN_WITHIN, POLICY, PROTOCOL, SERVER_ERROR, accept, answer, close,
    next,
};
use crate::AppState;
use crate::net::Peer;
use crate::phone::CodeOutcome;

pub(super) async fn upgrade(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Path(domain): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    let ip = canonical_ip(peer.addr.ip());
    let mut c = Connection {
        st,
        ip,
        domain,
        challenge: None,
        proven: None,
    };
    accept(ws, move |socket| async move { c.run(socket).await })
}

struct Connection {
    st: AppState,
    ip: std::net::IpAddr,
    domain: String,
    /// The challenge sent for a MAC, until it is answered (one per connection).
    challenge: Option<(Mac, String)>,
    /// The MAC this connection proved to be, and its domain.
    proven: Option<(Mac, DomainId)>,
}

/// The one answer to every refusal, so a refusal tells nothing of domains or devices.
const REFUSED: End = Some((POLICY, "not registered"));

fn send(kind: u16, body: serde_json::Value) -> Message {
    Message::Binary(inno::admin_frame(kind, &body).into())
}

impl Connection {
    async fn run(&mut self, mut socket: WebSocket) {
        let deadline = tokio::time::Instant::now() + LOGIN_WITHIN;
        loop {
            let pending = self.proven.is_none().then_some(deadline);
            let bytes = match next(&mut socket, pending).await {
                Some(Incoming::Binary(b)) => b,
                Some(Incoming::Text(_)) => {
                    close(&mut socket, PROTOCOL, "binary messages only").await;
                    return;
                }
                None => return,
            };
            let (replies, end) = match Frame::parse(&bytes) {
                Ok(Frame::Admin {
                    kind: admin::IDENTIFY,
                    json,
                }) => match serde_json::from_slice::<Identify>(json) {
                    Ok(identify) => self.identify(&identify).await,
                    Err(_) => (Vec::new(), Some((PROTOCOL, "not a sysclient message"))),
                },
                // Tunnel traffic and other admin messages of a proven device are not used.
                Ok(_) if self.proven.is_some() => (Vec::new(), None),
                Ok(_) => (Vec::new(), REFUSED),
                Err(e) => {
                    tracing::info!(ip = %self.ip, error = %e, "a sysclient frame was refused");
                    (Vec::new(), Some((PROTOCOL, "not a sysclient message")))
                }
            };
            let pending = self.proven.is_none().then_some(deadline);
            if !answer(&mut socket, replies, end, pending).await {
                return;
            }
        }
    }

    async fn identify(&mut self, id: &Identify) -> (Vec<Message>, End) {
        let Ok(mac) = Mac::parse(&id.id) else {
            return (Vec::new(), Some((PROTOCOL, "not a sysclient message")));
        };
        if let Some((proven, d)) = self.proven {
            // A proven device may tell of changes (a new firmware), of itself only.
            if proven != mac {
                tracing::info!(ip = %self.ip, %proven, claimed = %mac, "a sysclient spoke for another MAC");
                return (Vec::new(), REFUSED);
            }
            return (Vec::new(), self.seen(d, mac, id).await);
        }
        let outstanding = self.challenge.take();
        match (outstanding, &id.digest, &id.provisioning_code) {
            (Some((m, challenge)), Some(digest), _) if m == mac => {
                self.prove(mac, id, &challenge, digest).await
            }
            // One challenge per connection.
            (Some(_), _, _) => (Vec::new(), REFUSED),
            (None, _, Some(code)) => self.join(mac, id, code).await,
            (None, _, None) => {
                // Known or not, the same challenge.
                let challenge = inno::challenge();
                let reply = send(admin::CHALLENGE, json!({"challenge": challenge}));
                self.challenge = Some((mac, challenge));
                (vec![reply], None)
            }
        }
    }

    /// Checks the digest answering our challenge.
    async fn prove(
        &mut self,
        mac: Mac,
        id: &Identify,
        challenge: &str,
        digest: &str,
    ) -> (Vec<Message>, End) {
        let ip = self.ip.to_string();
        let attempt = Attempt::new(&self.st, &ip, &self.domain, "sysclient");
        let Ok(counted) = attempt.count().await else {
            return (Vec::new(), REFUSED);
        };
        let store = self.st.store.as_ref();
        let domain = match store.innovaphone_domain(&self.domain).await {
            Ok(d) => d,
            Err(e) => return unavailable(e),
        };
        let known = match &domain {
            Some(d) => match store.sysclient(d.id, mac).await {
                Ok(known) => known.map(|k| (d, k)),
                Err(e) => return unavailable(e),
            },
            None => None,
        };
        let good = known.filter(|(_, k)| {
            let expected = inno::sysclient_digest(
                &id.id,
                &id.product,
                &id.version,
                challenge,
                k.password.expose(),
            );
            inno::digest_matches(&expected, digest)
        });
        let Some((d, known)) = good else {
            attempt.failed("wrong digest").await;
            return (Vec::new(), REFUSED);
        };
        attempt.succeeded(counted).await;
        if let Some(end) = self.seen(d.id, mac, id).await {
            return (Vec::new(), Some(end));
        }
        self.proven = Some((mac, d.id));
        tracing::info!(domain = d.name, %mac, "sysclient connected");
        (welcome(d, &known.password, id.other), None)
    }

    /// A device redeems a code of this domain (a code at a domain that does not exist, or
    /// of another domain, is refused and counted like a wrong one, and stays live).
    async fn join(&mut self, mac: Mac, id: &Identify, code: &str) -> (Vec<Message>, End) {
        let domain = match self.st.store.innovaphone_domain(&self.domain).await {
            Ok(d) => d,
            Err(e) => return unavailable(e),
        };
        let password = inno::sysclient_password();
        let report = SysclientReport::from(id);
        let redemption = Redemption {
            model: report.product.clone(),
            firmware: report.version.clone(),
            ip: Some(self.ip),
            vendor: "innovaphone".into(),
            within: Some(
                domain
                    .as_ref()
                    .map_or(provisor_domain::model::DomainId(-1), |d| d.id),
            ),
            sysclient: Some(SysclientJoin {
                password: password.clone(),
                report,
            }),
            ..Redemption::new(mac)
        };
        match self
            .st
            .phones
            .redeem(self.st.store.as_ref(), code, &redemption)
            .await
        {
            Ok(CodeOutcome::Redeemed(r)) => {
                let Some(d) = domain else {
                    return unavailable("a code redeemed at no domain");
                };
                tracing::info!(domain = r.domain_name, %mac, "sysclient joined with a provisioning code");
                self.proven = Some((mac, d.id));
                let mut replies = vec![send(
                    admin::PASSWORD,
                    json!({"password": password.expose()}),
                )];
                replies.extend(welcome(&d, &password, id.other));
                (replies, None)
            }
            Ok(CodeOutcome::Refused | CodeOutcome::Locked(_)) => (Vec::new(), REFUSED),
            Err(e) => unavailable(e),
        }
    }

    /// Keeps what the proven device reported.
    async fn seen(&self, d: DomainId, mac: Mac, id: &Identify) -> End {
        match self
            .st
            .store
            .sysclient_seen(d, mac, &SysclientReport::from(id), Some(self.ip))
            .await
        {
            Ok(()) => None,
            Err(e) => unavailable(e).1,
        }
    }
}

/// What a device gets once it is in: the domain's admin password, encrypted under its
/// sysclient password, and for other vendors' devices the (empty) configuration.
fn welcome(d: &InnovaphoneDomain, password: &SecretString, other: bool) -> Vec<Message> {
    let mut out = Vec::new();
    if let Some(admin_password) = &d.admin_password {
        let seed = inno::seed();
        let pwd = inno::encrypt(&seed, password.expose(), admin_password.expose());
        out.push(send(
            admin::ADMIN_PASSWORD,
            json!({"seed": seed, "pwd": pwd}),
        ));
    }
    if other {
        out.push(send(admin::CONFIGURATION, json!({"last": true})));
    }
    out
}

fn unavailable(e: impl std::fmt::Display) -> (Vec<Message>, End) {
    tracing::error!(error = %e, "a sysclient could not be answered");
    (Vec::new(), Some((SERVER_ERROR, "unavailable")))
}
