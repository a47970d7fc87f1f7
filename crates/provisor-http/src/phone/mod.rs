//! The phone routes: `GET {base}/{file}` and the tokenized `GET {base}/{token}/{file}`
//! (base `/p` by default), and `PUT` of the files phones upload (logs).
//!
//! A request is attributed to a vendor, file rule, MAC, model and firmware by the catalog
//! (file name + User-Agent). Common files go to anyone. A device file goes only to a
//! request that proves to be that device, by the domain's policy: its URL token, HTTP digest
//! with its MAC and fetch password, or (where the policy says so) its network. Everything
//! else gets the installation's unauthenticated answer, the same whether the MAC is known
//! or not, except once: a newly added, armed device gets a hand-off file pointing it at its
//! tokenized URL, and is disarmed. Wrong tokens, unknown files and refusals all get the
//! same empty 404. Every refusal is logged with its reason and kept with the device.
//!
//! Contacts and refusals are written by a background task (`record`), never on the way to
//! the answer.

mod record;

use std::net::IpAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, USER_AGENT, WWW_AUTHENTICATE,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use provisor_domain::Mac;
use provisor_domain::catalog::{Detected as Detection, FileKind, Found, Vendor};
use provisor_domain::digest::{self, Credentials, NonceState, Nonces};
use provisor_domain::model::DeviceState;
use provisor_domain::phone::{
    Contact, PhoneDevice, Refusal, Unauthenticated, canonical_ip, looks_like_token,
    provisioning_url,
};
use provisor_domain::token;
use provisor_render::{Context, Detected, Renderer};
use provisor_store::Store;

pub use record::{Recorder, RecorderTask};

use crate::AppState;
use crate::net::Peer;

/// Largest file a phone may upload.
pub const MAX_UPLOAD: usize = 1024 * 1024;
/// How long a digest nonce is good for.
const NONCE_SECONDS: u64 = 300;

/// How phones are answered; from the installation's configuration.
#[derive(Clone, Debug)]
pub struct PhoneOptions {
    /// Path prefix of the phone routes, e.g. `/p`.
    pub base_path: String,
    /// The URL phones reach this server at (scheme, host, port), e.g. `http://prov:8080`.
    pub public_url: String,
    /// The HTTPS URL, where HTTPS is configured: devices are moved there.
    pub secure_url: Option<String>,
    pub unauthenticated: Unauthenticated,
    /// Where firmware files are kept.
    pub firmware_dir: std::path::PathBuf,
}

/// The phone side of the application: catalog and templates, options, the record writer.
pub struct Phones {
    renderer: Renderer,
    options: PhoneOptions,
    nonces: Nonces,
    recorder: Recorder,
}

impl Phones {
    pub fn new(renderer: Renderer, options: PhoneOptions, recorder: Recorder) -> Self {
        Self {
            renderer,
            options,
            nonces: Nonces::random(NONCE_SECONDS),
            recorder,
        }
    }

    pub fn renderer(&self) -> &Renderer {
        &self.renderer
    }

    pub fn options(&self) -> &PhoneOptions {
        &self.options
    }

    /// The directory URL of a device with this token (HTTPS where configured).
    pub fn device_url(&self, token: &str) -> String {
        let public = self
            .options
            .secure_url
            .as_deref()
            .unwrap_or(&self.options.public_url);
        provisioning_url(public, &self.options.base_path, token)
    }

    /// The directory URL without a token, where phones bootstrap.
    fn plain_url(&self) -> String {
        format!(
            "{}{}/",
            self.options.public_url.trim_end_matches('/'),
            self.options.base_path
        )
    }
}

/// The path as it may be logged: a token in it is replaced.
pub fn loggable_path(path: &str, base_path: &str) -> String {
    match path
        .strip_prefix(base_path)
        .and_then(|rest| rest.strip_prefix('/'))
        .and_then(|rest| rest.split_once('/'))
    {
        Some((_, file)) => format!("{base_path}/[token]/{file}"),
        None => path.to_owned(),
    }
}

pub fn router(base_path: &str) -> Router<AppState> {
    let not_found = || async { not_found() };
    Router::new()
        .route(
            &format!("{base_path}/{{*path}}"),
            get(fetch)
                .put(upload)
                .layer(DefaultBodyLimit::max(MAX_UPLOAD)),
        )
        .route(&format!("{base_path}/"), get(not_found))
        .route(base_path, get(not_found))
}

/// The one answer for everything a phone may not have or that is not there.
fn not_found() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

/// One phone request, as the decisions need it.
struct Request<'a> {
    method: &'a Method,
    /// The path as requested, for digest's `uri`.
    uri: &'a Uri,
    file: &'a str,
    ip: IpAddr,
    /// The MAC a verified client certificate names.
    client_mac: Option<Mac>,
    user_agent: Option<&'a str>,
    headers: &'a HeaderMap,
}

impl Request<'_> {
    fn refusal(&self, mac: Mac, reason: impl Into<String>) -> Refusal {
        Refusal {
            mac,
            at: Utc::now(),
            ip: self.ip,
            file: self.file.to_owned(),
            reason: reason.into(),
        }
    }
}

/// What the decisions come to.
enum Outcome {
    File { body: String, template: String },
    NotFound,
    Challenge { stale: bool },
}

async fn fetch(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path(path): Path<String>,
) -> Response {
    let (token, file) = match path.split_once('/') {
        Some((token, file)) => (Some(token), file),
        None => (None, path.as_str()),
    };
    if let (Some(token), Some(name)) = (token, file.strip_prefix("firmware/")) {
        let ip = canonical_ip(peer.addr.ip());
        return st
            .phones
            .firmware(st.store.as_ref(), token, name, ip, &peer, &headers)
            .await;
    }
    if file.is_empty() || file.contains('/') {
        return not_found();
    }
    let request = Request {
        method: &method,
        uri: &uri,
        file,
        ip: canonical_ip(peer.addr.ip()),
        client_mac: peer.client_mac(),
        user_agent: headers.get(USER_AGENT).and_then(|v| v.to_str().ok()),
        headers: &headers,
    };
    let phones = &st.phones;
    let outcome = match token {
        Some(token) => phones.tokenized(st.store.as_ref(), token, &request).await,
        None => phones.plain(st.store.as_ref(), &request).await,
    };
    match outcome {
        Ok(Outcome::File { body, template }) => file_response(body, &template, &headers),
        Ok(Outcome::NotFound) => not_found(),
        Ok(Outcome::Challenge { stale }) => {
            let nonce = phones.nonces.issue(unix_now());
            let mut response = StatusCode::UNAUTHORIZED.into_response();
            if let Ok(v) = HeaderValue::from_str(&digest::challenge(&nonce, stale)) {
                response.headers_mut().insert(WWW_AUTHENTICATE, v);
            }
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "a phone's file could not be made");
            let mut response = StatusCode::SERVICE_UNAVAILABLE.into_response();
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from_static("30"));
            response
        }
    }
}

/// A phone's upload (Poly logs), kept per device; only under the device's token.
async fn upload(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
    Path(path): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let Some((token, file)) = path.split_once('/') else {
        return not_found();
    };
    let user_agent = headers.get(USER_AGENT).and_then(|v| v.to_str().ok());
    let device = match st.phones.device_for_token(st.store.as_ref(), token).await {
        Ok(Some(device)) => device,
        Ok(None) => return not_found(),
        Err(e) => {
            tracing::error!(error = %e, "an upload could not be stored");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    let ip = canonical_ip(peer.addr.ip());
    let fits = match st.phones.detect_for(&device, file, user_agent) {
        Detection::Found(f) => {
            f.rule.kind == FileKind::Upload && f.mac.is_none_or(|m| m == device.mac)
        }
        _ => false,
    };
    if !fits
        || st
            .phones
            .token_refusal(&device, ip, peer.client_mac())
            .is_some()
    {
        return not_found();
    }
    match st.store.store_upload(device.id, file, &body).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => {
            tracing::error!(error = %e, "an upload could not be stored");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

fn unix_now() -> u64 {
    Utc::now().timestamp().max(0) as u64
}

/// A rendered file with its ETag, or 304 when the phone has it already.
fn file_response(body: String, template: &str, headers: &HeaderMap) -> Response {
    let etag = format!("\"{}\"", &token::digest(&body)[..32]);
    let unchanged = headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*");
    let content_type = if template.ends_with(".xml") || template.ends_with(".htm") {
        "application/xml; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(CONTENT_TYPE, content_type)], Body::from(body)).into_response()
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(ETAG, v);
    }
    h.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    response
}

/// What a request proves about a device.
enum Proof {
    Valid,
    /// Credentials that are wrong, or a request from outside the domain's networks.
    Refused(String),
    /// Nothing.
    None,
}

impl Phones {
    /// A firmware file, for a device presenting its token (under the same rules as its
    /// other files).
    async fn firmware(
        &self,
        store: &dyn Store,
        token: &str,
        name: &str,
        ip: IpAddr,
        peer: &Peer,
        headers: &HeaderMap,
    ) -> Response {
        let device = match self.device_for_token(store, token).await {
            Ok(Some(d)) => d,
            Ok(None) => return not_found(),
            Err(e) => {
                tracing::error!(error = %e, "a firmware request could not be answered");
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
        };
        if let Some(reason) = self.token_refusal(&device, ip, peer.client_mac()) {
            self.refuse(Refusal {
                mac: device.mac,
                at: Utc::now(),
                ip,
                file: format!("firmware/{name}"),
                reason,
            });
            return not_found();
        }
        match store.firmware(name).await {
            Ok(f) => crate::firmware::serve(&self.options.firmware_dir, &f, headers).await,
            Err(provisor_store::StoreError::NotFound(_)) => not_found(),
            Err(e) => {
                tracing::error!(error = %e, "a firmware request could not be answered");
                StatusCode::SERVICE_UNAVAILABLE.into_response()
            }
        }
    }

    fn detect_for<'c>(
        &'c self,
        device: &PhoneDevice,
        file: &str,
        user_agent: Option<&str>,
    ) -> Detection<'c> {
        let catalog = self.renderer.catalog();
        if device.vendor.is_empty() {
            catalog.detect(file, user_agent)
        } else {
            catalog.detect_for(&device.vendor, file, user_agent)
        }
    }

    async fn device_for_token(
        &self,
        store: &dyn Store,
        token: &str,
    ) -> provisor_store::Result<Option<PhoneDevice>> {
        if !looks_like_token(token) {
            return Ok(None);
        }
        store.phone_by_token(&token::digest(token)).await
    }

    /// `{base}/{token}/{file}`: the token says which device it is.
    async fn tokenized(
        &self,
        store: &dyn Store,
        token: &str,
        req: &Request<'_>,
    ) -> provisor_store::Result<Outcome> {
        let Some(device) = self.device_for_token(store, token).await? else {
            tracing::info!(file = req.file, ip = %req.ip, "phone fetch refused: unknown token");
            return Ok(Outcome::NotFound);
        };
        let refuse = |reason: String| {
            self.refuse(req.refusal(device.mac, reason));
            Ok(Outcome::NotFound)
        };
        if let Some(reason) = self.token_refusal(&device, req.ip, req.client_mac) {
            return refuse(reason);
        }
        let found = match self.detect_for(&device, req.file, req.user_agent) {
            Detection::Found(f) => f,
            Detection::MacMismatch { file, user_agent } => {
                return refuse(format!(
                    "the file name names MAC {file} but the User-Agent says {user_agent}"
                ));
            }
            _ => return Ok(Outcome::NotFound),
        };
        if let Some(other) = found.mac.filter(|m| *m != device.mac) {
            return refuse(format!("its token was used to ask for the file of {other}"));
        }
        if !matches!(found.rule.kind, FileKind::Device | FileKind::Common) {
            return Ok(Outcome::NotFound);
        }
        if device.is_armed(Utc::now()) {
            store.disarm(device.id).await?;
        }
        let url = self.device_url(device.token.expose());
        self.serve_device(&device, &found, req, url)
    }

    /// `{base}/{file}`: common files for anyone; device files for a device that proves
    /// itself by digest or network, or for the one hand-off of an armed device.
    async fn plain(&self, store: &dyn Store, req: &Request<'_>) -> provisor_store::Result<Outcome> {
        let catalog = self.renderer.catalog();
        let (found, mac) = match catalog.detect(req.file, req.user_agent) {
            Detection::Found(f) => {
                match f.rule.kind {
                    FileKind::Common => return self.serve_common(&f, req),
                    FileKind::Device => {}
                    FileKind::Upload | FileKind::Skip => return Ok(Outcome::NotFound),
                }
                let mac = f.mac;
                (Some(f), mac)
            }
            Detection::Ambiguous { mac, .. } => (None, mac),
            Detection::MacMismatch { file, user_agent } => {
                self.refuse(req.refusal(
                    file,
                    format!("the file name names MAC {file} but the User-Agent says {user_agent}"),
                ));
                return Ok(Outcome::NotFound);
            }
            Detection::Unknown => return Ok(Outcome::NotFound),
        };
        let Some(mac) = mac else {
            return Ok(Outcome::NotFound);
        };
        let device = match store.phone_by_mac(mac).await? {
            Some(d) if d.state != DeviceState::Disabled => d,
            Some(d) => {
                self.refuse(req.refusal(d.mac, "the device is disabled"));
                return self.unauthenticated(found.as_ref(), mac, req);
            }
            None => {
                if let Some(f) = &found {
                    self.recorder.contact(contact(f, mac, None, req, false));
                }
                return self.unauthenticated(found.as_ref(), mac, req);
            }
        };
        // The device record settles a name several vendors use, but only for the device
        // itself: the unauthenticated answer is made from the request alone.
        let own = match &found {
            Some(f) => Some(f.clone()),
            None => match self.detect_for(&device, req.file, req.user_agent) {
                Detection::Found(f) if f.rule.kind == FileKind::Device => Some(f),
                _ => None,
            },
        };
        match self.proof(&device, req) {
            Proof::Valid => match own {
                Some(f) => {
                    let url = if device.token.is_empty() {
                        self.plain_url()
                    } else {
                        self.device_url(device.token.expose())
                    };
                    self.serve_device(&device, &f, req, url)
                }
                None => Ok(Outcome::NotFound),
            },
            Proof::Refused(reason) => {
                self.refuse(req.refusal(device.mac, reason));
                self.unauthenticated(found.as_ref(), mac, req)
            }
            Proof::None => {
                let armed = device.is_armed(Utc::now()) && !device.token.is_empty();
                if let Some(f) = own.filter(|_| armed) {
                    // Only the one request that ends the window is handed the URL.
                    if store.disarm(device.id).await? {
                        return self.hand_off(&device, &f, req);
                    }
                }
                let why = if device.is_armed(Utc::now()) {
                    "fetched without credentials while armed, but the file cannot carry the hand-off"
                } else {
                    "fetched without credentials (not through its tokenized URL); arm the device to hand it its URL again"
                };
                self.refuse(req.refusal(device.mac, why));
                self.unauthenticated(found.as_ref(), mac, req)
            }
        }
    }

    /// A reason to refuse the device whatever it proves: disabled, or outside its networks.
    fn turned_away(&self, device: &PhoneDevice, ip: IpAddr) -> Option<String> {
        if device.state == DeviceState::Disabled {
            return Some("the device is disabled".into());
        }
        if !device.policy.network_allows(ip) {
            return Some(format!(
                "the request came from {ip}, outside the domain's allowed networks"
            ));
        }
        None
    }

    /// Why a request presenting the device's token is refused, if it is.
    fn token_refusal(
        &self,
        device: &PhoneDevice,
        ip: IpAddr,
        client_mac: Option<Mac>,
    ) -> Option<String> {
        if !device.policy.token {
            return Some("the domain's policy does not accept URL tokens".into());
        }
        if let Some(reason) = self.turned_away(device, ip) {
            return Some(reason);
        }
        client_mac
            .filter(|m| *m != device.mac)
            .map(|m| format!("presented the client certificate of {m}"))
    }

    fn proof(&self, device: &PhoneDevice, req: &Request<'_>) -> Proof {
        if let Some(reason) = self.turned_away(device, req.ip) {
            return Proof::Refused(reason);
        }
        let policy = &device.policy;
        if policy.networks_suffice && policy.in_networks(req.ip) {
            return Proof::Valid;
        }
        if let Some(mac) = req.client_mac {
            return if !policy.client_cert {
                Proof::Refused(
                    "presented a client certificate, which the domain's policy does not accept"
                        .into(),
                )
            } else if mac == device.mac {
                Proof::Valid
            } else {
                Proof::Refused(format!("presented the client certificate of {mac}"))
            };
        }
        let Some(credentials) = self.digest_credentials(req) else {
            return Proof::None;
        };
        if !policy.digest {
            return Proof::Refused(
                "sent digest credentials, which the domain's policy does not accept".into(),
            );
        }
        if Mac::parse(&credentials.username).ok() != Some(device.mac) {
            return Proof::Refused(format!(
                "sent digest credentials of '{}', not of this device",
                credentials.username
            ));
        }
        match self.nonces.check(&credentials.nonce, unix_now()) {
            NonceState::Valid => {}
            NonceState::Stale => return Proof::None,
            NonceState::Invalid => {
                return Proof::Refused("sent a digest nonce this server did not make".into());
            }
        }
        if device.fetch_password.is_empty()
            || !credentials.verify(req.method.as_str(), device.fetch_password.expose())
        {
            return Proof::Refused("sent a wrong digest password".into());
        }
        Proof::Valid
    }

    /// Digest credentials for this realm and this request's URI, if the request has them.
    fn digest_credentials(&self, req: &Request<'_>) -> Option<Credentials> {
        let header = req.headers.get(AUTHORIZATION)?.to_str().ok()?;
        let c = Credentials::parse(header)?;
        let uri = req
            .uri
            .path_and_query()
            .map_or(req.uri.path(), |p| p.as_str());
        (c.realm == digest::REALM && (c.uri == uri || c.uri == req.uri.to_string())).then_some(c)
    }

    /// What a request that proves nothing gets, from the request alone.
    fn unauthenticated(
        &self,
        found: Option<&Found<'_>>,
        mac: Mac,
        req: &Request<'_>,
    ) -> provisor_store::Result<Outcome> {
        match self.options.unauthenticated {
            Unauthenticated::NotFound => Ok(Outcome::NotFound),
            Unauthenticated::Challenge => {
                let stale = self
                    .digest_credentials(req)
                    .is_some_and(|c| self.nonces.check(&c.nonce, unix_now()) == NonceState::Stale);
                Ok(Outcome::Challenge { stale })
            }
            Unauthenticated::Bootstrap => match found {
                Some(f) => {
                    let detected = detected(f, Some(mac), None);
                    self.render(
                        f,
                        Context::without_secrets(Some(f.vendor), &detected, self.plain_url()),
                    )
                }
                None => Ok(Outcome::NotFound),
            },
        }
    }

    fn serve_common(&self, f: &Found<'_>, req: &Request<'_>) -> provisor_store::Result<Outcome> {
        let _ = req;
        let detected = detected(f, f.mac, None);
        self.render(
            f,
            Context::without_secrets(Some(f.vendor), &detected, self.plain_url()),
        )
    }

    /// The armed device's one unauthenticated fetch: its file with no secrets, pointing it
    /// at its tokenized URL.
    fn hand_off(
        &self,
        device: &PhoneDevice,
        f: &Found<'_>,
        req: &Request<'_>,
    ) -> provisor_store::Result<Outcome> {
        tracing::info!(mac = %device.mac, domain = device.domain_name, ip = %req.ip, file = req.file, "armed device handed its tokenized URL");
        self.recorder
            .contact(contact(f, device.mac, Some(device.id), req, false));
        let detected = detected(f, Some(device.mac), Some(device));
        let url = self.device_url(device.token.expose());
        self.render(f, Context::without_secrets(Some(f.vendor), &detected, url))
    }

    fn serve_device(
        &self,
        device: &PhoneDevice,
        f: &Found<'_>,
        req: &Request<'_>,
        url: String,
    ) -> provisor_store::Result<Outcome> {
        let provisioned = f.rule.kind == FileKind::Device;
        self.recorder
            .contact(contact(f, device.mac, Some(device.id), req, provisioned));
        let detected = detected(f, Some(device.mac), Some(device));
        self.render(
            f,
            Context::for_device(device, Some(f.vendor), &detected, url),
        )
    }

    fn render(&self, f: &Found<'_>, context: Context) -> provisor_store::Result<Outcome> {
        match self
            .renderer
            .render(&f.vendor.id, &f.rule.template, context)
        {
            Ok(rendered) => {
                for w in &rendered.warnings {
                    tracing::warn!(vendor = %f.vendor.id, template = f.rule.template, "{w}");
                }
                Ok(Outcome::File {
                    body: rendered.body,
                    template: f.rule.template.clone(),
                })
            }
            Err(e) => {
                tracing::error!(error = %e, "a phone's file could not be rendered");
                Ok(Outcome::NotFound)
            }
        }
    }

    fn refuse(&self, refusal: Refusal) {
        tracing::info!(mac = %refusal.mac, ip = %refusal.ip, file = refusal.file, reason = refusal.reason, "phone fetch refused");
        self.recorder.refusal(refusal);
    }
}

/// Vendor, model and firmware as the request says, the device record filling gaps.
fn detected(f: &Found<'_>, mac: Option<Mac>, device: Option<&PhoneDevice>) -> Detected {
    let model = f
        .model
        .clone()
        .or_else(|| device.map(|d| f.vendor.canonical_model(&d.model)))
        .unwrap_or_default();
    Detected {
        vendor: f.vendor.id.clone(),
        model,
        firmware: f
            .firmware
            .clone()
            .or_else(|| device.map(|d| d.firmware.clone()))
            .unwrap_or_default(),
        mac,
    }
}

fn contact(
    f: &Found<'_>,
    mac: Mac,
    device_id: Option<i64>,
    req: &Request<'_>,
    provisioned: bool,
) -> Contact {
    let vendor: &Vendor = f.vendor;
    Contact {
        mac,
        device_id,
        vendor: vendor.id.clone(),
        model: f.model.clone().unwrap_or_default(),
        firmware: f.firmware.clone().unwrap_or_default(),
        ip: req.ip,
        at: Utc::now(),
        provisioned,
    }
}

#[cfg(test)]
mod tests {
    use super::loggable_path;

    #[test]
    fn tokens_never_reach_the_log() {
        assert_eq!(loggable_path("/p/SECRET/x.cfg", "/p"), "/p/[token]/x.cfg");
        assert_eq!(loggable_path("/p/x.cfg", "/p"), "/p/x.cfg");
        assert_eq!(loggable_path("/api/v1/domains", "/p"), "/api/v1/domains");
    }
}
