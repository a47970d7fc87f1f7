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

mod activate;
pub mod cache;
mod record;

use std::net::IpAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, RETRY_AFTER, USER_AGENT,
    WWW_AUTHENTICATE,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use provisor_domain::Mac;
use provisor_domain::catalog::{Detected as Detection, FileKind, Found, Vendor};
use provisor_domain::code::Redemption;
use provisor_domain::digest::{self, Credentials, NonceState, Nonces};
use provisor_domain::model::Actor;
use provisor_domain::model::DeviceState;
use provisor_domain::phone::{
    Contact, PhoneDevice, Refusal, Unauthenticated, canonical_ip, looks_like_token,
    provisioning_url,
};
use provisor_domain::template::{DeviceTemplate, file_mac};
use provisor_domain::token;
use provisor_render::{Context, Detected, Rendered, Renderer};
use provisor_store::{Redeemed, Store};

pub use record::{Recorder, RecorderTask};

use cache::{DeviceKey, FileKey, Made, PhoneCache};

use crate::AppState;
use crate::limit::{Limit, Limiter};
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
    /// Failure limits for provisioning codes: per source IP, and for the installation.
    pub code_limits: CodeLimits,
    /// Path prefix of the innovaphone AppWebsocket endpoint (`<prefix>/<domain>`).
    pub innovaphone_path: String,
    /// Phone requests answered at once (0: no limit): see `admit`.
    pub max_in_flight: usize,
    /// Load balancers whose `X-Forwarded-For` names the client (`net::forwarded`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeLimits {
    /// Wrong codes and portal logins of one source IP (one budget for both).
    pub per_ip: Limit,
    /// Wrong codes of the whole installation.
    pub total: Limit,
    /// Wrong portal logins naming one domain.
    pub per_domain: Limit,
}

impl Default for CodeLimits {
    fn default() -> Self {
        let limit = |failures| Limit {
            failures,
            window: std::time::Duration::from_secs(600),
            lockout: std::time::Duration::from_secs(900),
        };
        CodeLimits {
            per_ip: limit(10),
            total: limit(100),
            per_domain: limit(50),
        }
    }
}

/// What a code redemption comes to.
pub enum CodeOutcome {
    Redeemed(Box<Redeemed>),
    /// Not a live code, or the MAC has a device already: the same answer for all.
    Refused,
    /// Too many failures from this address, or overall; retry after the duration.
    Locked(std::time::Duration),
}

impl PhoneOptions {
    /// Where devices (and softphones) are sent: the HTTPS URL where configured.
    pub fn public_base(&self) -> &str {
        self.secure_url.as_deref().unwrap_or(&self.public_url)
    }
}

/// The phone side of the application: catalog and templates, options, the record writer.
pub struct Phones {
    renderer: Renderer,
    options: PhoneOptions,
    nonces: Nonces,
    recorder: Recorder,
    limiter: Limiter,
    /// Phone requests being answered now.
    in_flight: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    cache: PhoneCache,
}

impl Phones {
    pub fn new(renderer: Renderer, options: PhoneOptions, recorder: Recorder) -> Self {
        Self {
            renderer,
            options,
            nonces: Nonces::random(NONCE_SECONDS),
            recorder,
            limiter: Limiter::new(),
            in_flight: Default::default(),
            cache: PhoneCache::off(Default::default()),
        }
    }

    /// The same, keeping devices and files in `cache` between fetches.
    pub fn with_cache(mut self, cache: PhoneCache) -> Self {
        self.cache = cache;
        self
    }

    pub fn cache(&self) -> &PhoneCache {
        &self.cache
    }

    /// The same, counting failures with `limiter` (the database's, with several nodes).
    pub fn with_limiter(mut self, limiter: Limiter) -> Self {
        self.limiter = limiter;
        self
    }

    pub fn renderer(&self) -> &Renderer {
        &self.renderer
    }

    pub fn options(&self) -> &PhoneOptions {
        &self.options
    }

    /// Counts a wrong guess (a code, or a domain's automatic-provisioning token) from `ip`
    /// for `mac`, and audits it.
    async fn guess_failed(
        &self,
        store: &dyn Store,
        guess: Guess<'_>,
        mac: Mac,
        ip: &str,
    ) -> provisor_store::Result<()> {
        let counted = self.count_guess(&guess, ip).await;
        self.audit_guess(store, &guess, mac, ip, counted).await
    }

    /// Counts a guess against the limits (ahead of checking it); what each count did.
    async fn count_guess(&self, guess: &Guess<'_>, ip: &str) -> (bool, bool) {
        let limits = self.options.code_limits;
        let (key, limit) = guess_key(guess, &limits);
        let per_ip = self
            .limiter
            .fail(&format!("guess-ip:{ip}"), limits.per_ip)
            .await;
        (per_ip, self.limiter.fail(&key, limit).await)
    }

    /// Takes back a guess counted ahead that turned out right.
    async fn refund_guess(&self, guess: &Guess<'_>, ip: &str, counted: (bool, bool)) {
        let limits = self.options.code_limits;
        let (key, limit) = guess_key(guess, &limits);
        self.limiter
            .refund(&format!("guess-ip:{ip}"), limits.per_ip, counted.0)
            .await;
        self.limiter.refund(&key, limit, counted.1).await;
    }

    async fn audit_guess(
        &self,
        store: &dyn Store,
        guess: &Guess<'_>,
        mac: Mac,
        ip: &str,
        counted: (bool, bool),
    ) -> provisor_store::Result<()> {
        let (action, detail) = match guess {
            Guess::Code => ("code.refused", serde_json::json!({"mac": mac, "ip": ip})),
            Guess::Auto { domain, category } => (
                "auto.refused",
                serde_json::json!({"mac": mac, "ip": ip, "domain": domain, "category": category}),
            ),
        };
        tracing::info!(%mac, ip, action, locked = counted.0 || counted.1, "a guess was refused");
        store
            .record_audit(
                &Actor(format!("phone:{ip}")),
                action,
                &mac.to_string(),
                detail,
            )
            .await
    }

    /// A MAC that has a device is never bound by a code or a domain token, but a request
    /// presenting one counts as a failure as it would for an unknown MAC, so the limits do
    /// not tell the two apart.
    async fn refuse_guesses(
        &self,
        store: &dyn Store,
        mac: Mac,
        req: &Request<'_>,
    ) -> provisor_store::Result<()> {
        let ip = req.ip.to_string();
        if let Some(auto) = auto_query(req) {
            let guess = Guess::Auto {
                domain: &auto.domain,
                category: &auto.category,
            };
            if self.guess_locked(&guess, &ip).await.is_none() {
                self.guess_failed(store, guess, mac, &ip).await?;
            }
        }
        if self.options.unauthenticated == Unauthenticated::CodePrompt
            && crate::auth::basic_credentials(req.headers)
                .map(|(_, p)| p)
                .is_some()
            && self.guess_locked(&Guess::Code, &ip).await.is_none()
        {
            self.guess_failed(store, Guess::Code, mac, &ip).await?;
        }
        Ok(())
    }

    /// How much longer guesses of this kind from `ip` are refused, if they are.
    async fn guess_locked(&self, guess: &Guess<'_>, ip: &str) -> Option<std::time::Duration> {
        let (other, _) = guess_key(guess, &self.options.code_limits);
        match self.limiter.locked(&format!("guess-ip:{ip}")).await {
            Some(wait) => Some(wait),
            None => self.limiter.locked(&other).await,
        }
    }

    /// The failure limiter for guessable secrets, shared with the softphone logins.
    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    /// Redeems a provisioning code under the failure limits; every failure is audited.
    pub async fn redeem(
        &self,
        store: &dyn Store,
        code: &str,
        redemption: &Redemption,
    ) -> provisor_store::Result<CodeOutcome> {
        let ip = redemption
            .ip
            .map_or_else(|| "unknown".to_owned(), |i| i.to_string());
        if let Some(wait) = self.guess_locked(&Guess::Code, &ip).await {
            tracing::info!(ip, "provisioning code not tried: too many failures");
            return Ok(CodeOutcome::Locked(wait));
        }
        // Counted ahead, so guesses made at the same moment all count.
        let counted = self.count_guess(&Guess::Code, &ip).await;
        if let Some(redeemed) = store.redeem_code(code, redemption).await? {
            self.refund_guess(&Guess::Code, &ip, counted).await;
            tracing::info!(mac = %redemption.mac, domain = redeemed.domain_name, ip, "provisioning code redeemed");
            return Ok(CodeOutcome::Redeemed(Box::new(redeemed)));
        }
        self.audit_guess(store, &Guess::Code, redemption.mac, &ip, counted)
            .await?;
        Ok(CodeOutcome::Refused)
    }

    /// The directory URL of a device with this token (HTTPS where configured).
    pub fn device_url(&self, token: &str) -> String {
        provisioning_url(self.options.public_base(), &self.options.base_path, token)
    }

    /// The directory URL a device's files point it at: its tokenized one if it has a token.
    fn own_url(&self, device: &PhoneDevice) -> String {
        if device.token.is_empty() {
            self.plain_url()
        } else {
            self.device_url(device.token.expose())
        }
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
            &format!("{base_path}/activate"),
            axum::routing::post(activate::activate)
                .get(not_found)
                .layer(DefaultBodyLimit::max(activate::MAX_BODY)),
        )
        .route(
            &format!("{base_path}/{{*path}}"),
            get(fetch)
                .put(upload)
                .layer(DefaultBodyLimit::max(MAX_UPLOAD)),
        )
        .route(&format!("{base_path}/"), get(not_found))
        .route(base_path, get(not_found))
}

/// Admission control for boot storms: above `max_in_flight` phone requests at once, a new
/// one is answered 503 at once, with a `Retry-After` of 5 to 30 seconds (random, so the
/// phones that were turned away come back spread out), while those in progress finish.
pub async fn admit(
    State(st): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use std::sync::atomic::Ordering;
    struct Admitted(std::sync::Arc<std::sync::atomic::AtomicUsize>);
    impl Drop for Admitted {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let max = st.phones.options.max_in_flight;
    let counter = st.phones.in_flight.clone();
    if counter.fetch_add(1, Ordering::SeqCst) >= max && max > 0 {
        counter.fetch_sub(1, Ordering::SeqCst);
        // (Jitter, not a secret: the clock's nanoseconds are random enough.)
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let wait = 5 + u64::from(nanos / 1000) % 26;
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [
                (RETRY_AFTER, HeaderValue::from(wait)),
                (CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
        )
            .into_response();
    }
    let _admitted = Admitted(counter);
    next.run(request).await
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

/// The file a request is answered with: the vendor and template that make it, what the
/// request says of the phone, and for a known device the stored template that replaces the
/// built-in one.
#[derive(Clone)]
struct Target<'c, 'd> {
    vendor: &'c Vendor,
    template: String,
    kind: FileKind,
    mac: Option<Mac>,
    model: Option<String>,
    firmware: Option<String>,
    stored: Option<&'d DeviceTemplate>,
}

impl<'c, 'd> Target<'c, 'd> {
    fn from_found(f: Found<'c>) -> Self {
        Target {
            vendor: f.vendor,
            template: f.rule.template.clone(),
            kind: f.rule.kind,
            mac: f.mac,
            model: f.model,
            firmware: f.firmware,
            stored: None,
        }
    }

    /// With the device's stored template for it, if its domain or category has one.
    fn for_device(mut self, device: &'d PhoneDevice) -> Self {
        self.stored = device.template(&self.vendor.id, &self.template);
        self
    }
}

/// Where the template of a file comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TemplateSource {
    BuiltIn,
    Domain,
    Category,
}

/// What a device would receive for a file, for admins.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Preview {
    pub file: String,
    pub vendor: String,
    pub template: String,
    pub source: TemplateSource,
    /// `device` (only for the authenticated device) or `common` (for any phone).
    pub kind: String,
    pub body: String,
    pub warnings: Vec<String>,
    /// Whether SIP and admin passwords are replaced by `********`.
    pub masked: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("the device's phone does not fetch a file named {0}")]
    NoSuchFile(String),
    #[error("the file cannot be made: {0}")]
    Template(String),
}

/// A run of exactly twelve hex digits in a file name, as a MAC.
pub fn mac_in(file: &str) -> Option<Mac> {
    file.split(|c: char| !c.is_ascii_hexdigit())
        .find(|run| run.len() == 12)
        .and_then(|run| Mac::parse(run).ok())
}

/// What the decisions come to.
enum Outcome {
    File(Arc<Made>),
    NotFound,
    Challenge { stale: bool },
    CodePrompt,
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
            .firmware(
                st.store.as_ref(),
                token,
                name,
                uri.query(),
                ip,
                &peer,
                &headers,
            )
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
        Ok(Outcome::File(made)) => file_response(&made, &headers),
        Ok(Outcome::NotFound) => not_found(),
        Ok(Outcome::CodePrompt) => {
            let mut response = StatusCode::UNAUTHORIZED.into_response();
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Provisioning code\", charset=\"UTF-8\""),
            );
            response
        }
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

/// Runs `f` with the async worker handed over to the others (multi-threaded runtimes).
fn off_the_workers<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    if Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread) {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

/// The key (besides the source IP's) a guess counts against, and its limit.
fn guess_key(guess: &Guess<'_>, limits: &CodeLimits) -> (String, Limit) {
    match guess {
        Guess::Code => ("code-all".to_owned(), limits.total),
        Guess::Auto { domain, .. } => (
            format!("auto-domain:{}", domain.to_ascii_lowercase()),
            limits.per_domain,
        ),
    }
}

/// A guessable secret a request presented.
enum Guess<'a> {
    Code,
    Auto { domain: &'a str, category: &'a str },
}

/// A firmware URL's query: the contents a job refers to.
#[derive(serde::Deserialize)]
struct FirmwareQuery {
    sha256: String,
}

/// The automatic-provisioning query of a request (`domain`, `token`, `category`).
#[derive(serde::Deserialize)]
struct AutoQuery {
    domain: String,
    token: String,
    category: String,
}

fn auto_query(req: &Request<'_>) -> Option<AutoQuery> {
    req.uri
        .query()
        .and_then(|q| serde_urlencoded::from_str::<AutoQuery>(q).ok())
}

/// What a phone's request tells of it, for a redemption.
fn redemption_of(f: &Target<'_, '_>, mac: Mac, req: &Request<'_>) -> Redemption {
    Redemption {
        mac,
        model: f.model.clone().unwrap_or_default(),
        firmware: f.firmware.clone().unwrap_or_default(),
        bootcode: String::new(),
        reported_ip: String::new(),
        ip: Some(req.ip),
        vendor: f.vendor.id.clone(),
        ..Redemption::new(mac)
    }
}

fn unix_now() -> u64 {
    Utc::now().timestamp().max(0) as u64
}

/// A rendered file with its ETag, or 304 when the phone has it already.
fn file_response(made: &Made, headers: &HeaderMap) -> Response {
    let etag = &made.etag;
    let unchanged = headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*");
    let content_type = if made.xml {
        "application/xml; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(CONTENT_TYPE, content_type)],
            Body::from(made.body.clone()),
        )
            .into_response()
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(etag) {
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
    #[allow(clippy::too_many_arguments)]
    async fn firmware(
        &self,
        store: &dyn Store,
        token: &str,
        name: &str,
        query: Option<&str>,
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
        // A software job's contents as they were when it was made: only the device's own
        // job's (`?sha256=` of its firmware URL).
        let pinned = query
            .and_then(|q| serde_urlencoded::from_str::<FirmwareQuery>(q).ok())
            .map(|q| q.sha256);
        if let Some(sha256) = pinned {
            let offer = device.jobs.firmware.as_ref();
            if offer.and_then(|o| o.sha256.as_deref()) != Some(sha256.as_str())
                || offer.and_then(|o| o.firmware.as_deref()) != Some(name)
            {
                return not_found();
            }
            let path = crate::firmware::path(&self.options.firmware_dir, &sha256);
            let Ok(meta) = tokio::fs::metadata(&path).await else {
                return not_found();
            };
            let f = provisor_domain::model::Firmware {
                name: name.to_owned(),
                sha256,
                size: meta.len(),
                created_at: meta
                    .modified()
                    .map(DateTime::<Utc>::from)
                    .unwrap_or_else(|_| Utc::now()),
            };
            return crate::firmware::serve(&self.options.firmware_dir, &f, headers).await;
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

    /// The device whose token is `token`, from the cache where it can be.
    async fn device_for_token(
        &self,
        store: &dyn Store,
        token: &str,
    ) -> provisor_store::Result<Option<Arc<PhoneDevice>>> {
        if !looks_like_token(token) {
            return Ok(None);
        }
        let digest = token::digest(token);
        let load = store.phone_by_token(&digest);
        // Unknown tokens are not kept (as many as anyone makes up), nor a device found by
        // its previous token, which works only for a while.
        let current = |found: &Option<Arc<PhoneDevice>>| {
            found
                .as_ref()
                .is_some_and(|d| token::digest(d.token.expose()) == digest)
        };
        self.cached_device(DeviceKey::Token(digest.clone()), load, current)
            .await
    }

    /// The device with `mac` (or that there is none), from the cache where it can be.
    async fn device_by_mac(
        &self,
        store: &dyn Store,
        mac: Mac,
    ) -> provisor_store::Result<Option<Arc<PhoneDevice>>> {
        let load = store.phone_by_mac(mac);
        self.cached_device(DeviceKey::Mac(mac), load, |_| true)
            .await
    }

    /// What `key` finds: from the cache, or read by `load` and kept where `keep` says so.
    async fn cached_device(
        &self,
        key: DeviceKey,
        load: impl std::future::Future<Output = provisor_store::Result<Option<PhoneDevice>>>,
        keep: impl FnOnce(&Option<Arc<PhoneDevice>>) -> bool,
    ) -> provisor_store::Result<Option<Arc<PhoneDevice>>> {
        // Read before the device: what is read under it is out of date after any change.
        let generation = self.cache.generation();
        if let Some(found) = self.cache.device(&key) {
            return Ok(found);
        }
        let found = load.await?.map(Arc::new);
        if keep(&found) {
            self.cache.keep_device(generation, key, found.clone());
        }
        Ok(found)
    }

    /// `{base}/{token}/{file}`: the token says which device it is.
    async fn tokenized(
        &self,
        store: &dyn Store,
        token: &str,
        req: &Request<'_>,
    ) -> provisor_store::Result<Outcome> {
        // Read before the device, for the files made from it.
        let generation = self.cache.generation();
        let Some(device) = self.device_for_token(store, token).await? else {
            tracing::info!(file = req.file, ip = %req.ip, "phone fetch refused: unknown token");
            return Ok(Outcome::NotFound);
        };
        let digest = token::digest(token);
        let refuse = |reason: String| {
            self.refuse(req.refusal(device.mac, reason));
            Ok(Outcome::NotFound)
        };
        if let Some(reason) = self.token_refusal(&device, req.ip, req.client_mac) {
            return refuse(reason);
        }
        let target = match self.extra(&device, req.file, req.user_agent) {
            Some(t) => t,
            None => {
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
                Target::from_found(found).for_device(&device)
            }
        };
        if !matches!(target.kind, FileKind::Device | FileKind::Common) {
            return Ok(Outcome::NotFound);
        }
        if device.is_armed(Utc::now()) {
            store.disarm(device.id).await?;
            // Disarmed (here, or by another node before): read again next time.
            self.cache.forget_device(&device);
        }
        let url = self.device_url(device.token.expose());
        self.serve_device(&device, &target, req, url, Some((&digest, generation)))
    }

    /// `{base}/{file}`: common files for anyone; device files for a device that proves
    /// itself by digest or network, or for the one hand-off of an armed device.
    async fn plain(&self, store: &dyn Store, req: &Request<'_>) -> provisor_store::Result<Outcome> {
        let catalog = self.renderer.catalog();
        let (found, mac) = match catalog.detect(req.file, req.user_agent) {
            Detection::Found(f) => {
                match f.rule.kind {
                    FileKind::Common => return self.serve_common(&Target::from_found(f)),
                    FileKind::Device => {}
                    FileKind::Upload => return Ok(Outcome::NotFound),
                    // Not served from the catalog, but perhaps a file a stored template
                    // adds for the device (3CX's `cfg{mac}` is Grandstream's skipped name).
                    FileKind::Skip => return self.extra_only(store, f.mac, req).await,
                }
                let mac = f.mac;
                (Some(Target::from_found(f)), mac)
            }
            Detection::Ambiguous { mac, .. } => (None, mac),
            Detection::MacMismatch { file, user_agent } => {
                self.refuse(req.refusal(
                    file,
                    format!("the file name names MAC {file} but the User-Agent says {user_agent}"),
                ));
                return Ok(Outcome::NotFound);
            }
            Detection::Unknown => return self.extra_only(store, mac_in(req.file), req).await,
        };
        let Some(mac) = mac else {
            return Ok(Outcome::NotFound);
        };
        let device = self.device_by_mac(store, mac).await?;
        if device.is_some() && found.is_some() {
            self.refuse_guesses(store, mac, req).await?;
        }
        let device = match device {
            Some(d) if d.state != DeviceState::Disabled => d,
            Some(d) => {
                self.refuse(req.refusal(d.mac, "the device is disabled"));
                return self.unauthenticated(found.as_ref(), mac, req);
            }
            None => {
                if let Some(f) = &found {
                    if let Some(outcome) = self.auto_provisioning(store, f, mac, req).await? {
                        return Ok(outcome);
                    }
                    if let Some(outcome) = self.code_prompt(store, f, mac, req).await? {
                        return Ok(outcome);
                    }
                    self.recorder.contact(contact(f, mac, None, req, false));
                }
                return self.unauthenticated(found.as_ref(), mac, req);
            }
        };
        // The device record settles a name several vendors use, and may add files of its
        // own, but only for the device itself: the unauthenticated answer is made from the
        // request alone.
        let own = match (self.extra(&device, req.file, req.user_agent), &found) {
            (Some(extra), _) => Some(extra),
            (None, Some(f)) => Some(f.clone().for_device(&device)),
            (None, None) => match self.detect_for(&device, req.file, req.user_agent) {
                Detection::Found(f) if f.rule.kind == FileKind::Device => {
                    Some(Target::from_found(f).for_device(&device))
                }
                _ => None,
            },
        };
        match self.proof(&device, req) {
            Proof::Valid => match own {
                Some(f) => self.serve_device(&device, &f, req, self.own_url(&device), None),
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
                    let disarmed = store.disarm(device.id).await?;
                    self.cache.forget_device(&device);
                    if disarmed {
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

    /// Where unauthenticated fetches get the code prompt: a request for the device file of
    /// a MAC no device has, with a live code as its Basic password, binds the MAC and gets
    /// the new device's file. `None`: no code, or not a live one (the prompt again).
    async fn code_prompt(
        &self,
        store: &dyn Store,
        f: &Target<'_, '_>,
        mac: Mac,
        req: &Request<'_>,
    ) -> provisor_store::Result<Option<Outcome>> {
        if self.options.unauthenticated != Unauthenticated::CodePrompt {
            return Ok(None);
        }
        let Some(code) = crate::auth::basic_credentials(req.headers).map(|(_, p)| p) else {
            return Ok(None);
        };
        let redemption = redemption_of(f, mac, req);
        if !matches!(
            self.redeem(store, &code, &redemption).await?,
            CodeOutcome::Redeemed(_)
        ) {
            return Ok(None);
        }
        self.serve_new(store, f, mac, req).await
    }

    /// The file of a device the request has just made (by a code or the domain's token),
    /// disarmed: the file moves it to its tokenized URL.
    async fn serve_new(
        &self,
        store: &dyn Store,
        f: &Target<'_, '_>,
        mac: Mac,
        req: &Request<'_>,
    ) -> provisor_store::Result<Option<Outcome>> {
        let Some(device) = store.phone_by_mac(mac).await? else {
            return Ok(None);
        };
        // Made just now: that this node knew the MAC to have no device is out of date.
        self.cache.forget_device(&device);
        store.disarm(device.id).await?;
        let target = f.clone().for_device(&device);
        self.serve_device(&device, &target, req, self.own_url(&device), None)
            .map(Some)
    }

    /// Automatic provisioning: a device-file request of a MAC without a device whose query
    /// names `domain`, `token` (the domain's automatic-provisioning token) and `category`
    /// registers the MAC into that category and gets its file. A wrong token (or domain or
    /// category) is answered like any unknown MAC, counted against the source IP and the
    /// domain, and audited. `None`: not such a request, or refused.
    async fn auto_provisioning(
        &self,
        store: &dyn Store,
        f: &Target<'_, '_>,
        mac: Mac,
        req: &Request<'_>,
    ) -> provisor_store::Result<Option<Outcome>> {
        let Some(auto) = auto_query(req) else {
            return Ok(None);
        };
        let ip = req.ip.to_string();
        let guess = Guess::Auto {
            domain: &auto.domain,
            category: &auto.category,
        };
        if self.guess_locked(&guess, &ip).await.is_some() {
            tracing::info!(ip, "automatic provisioning not tried: too many failures");
            return Ok(None);
        }
        let redemption = redemption_of(f, mac, req);
        let counted = self.count_guess(&guess, &ip).await;
        if store
            .auto_provision(&auto.domain, &auto.token, &auto.category, &redemption)
            .await?
            .is_some()
        {
            self.refund_guess(&guess, &ip, counted).await;
            tracing::info!(%mac, domain = auto.domain, category = auto.category, ip, "device registered by automatic provisioning");
            return self.serve_new(store, f, mac, req).await;
        }
        self.audit_guess(store, &guess, mac, &ip, counted).await?;
        Ok(None)
    }

    /// The URL to roll out for automatic provisioning into `category` of `domain`: the
    /// plain phone directory with every value percent-encoded.
    pub fn auto_provisioning_url(&self, domain: &str, token: &str, category: &str) -> String {
        let enc = crate::url_component;
        format!(
            "{}?domain={}&token={}&category={}",
            self.plain_url(),
            enc(domain),
            enc(token),
            enc(category)
        )
    }

    /// A file the catalog does not serve, which may be one a stored template adds for the
    /// device of `mac`: served to that device when it proves itself; every other request
    /// gets the unauthenticated answer of a file no vendor serves (the empty 404, or the
    /// challenge), whether the MAC is known or not.
    async fn extra_only(
        &self,
        store: &dyn Store,
        mac: Option<Mac>,
        req: &Request<'_>,
    ) -> provisor_store::Result<Outcome> {
        let Some(mac) = mac else {
            return Ok(Outcome::NotFound);
        };
        let nothing = || self.unauthenticated(None, mac, req);
        let Some(device) = self.device_by_mac(store, mac).await? else {
            return nothing();
        };
        let Some(target) = self.extra(&device, req.file, req.user_agent) else {
            return nothing();
        };
        match self.proof(&device, req) {
            Proof::Valid => self.serve_device(&device, &target, req, self.own_url(&device), None),
            Proof::Refused(reason) => {
                self.refuse(req.refusal(device.mac, reason));
                nothing()
            }
            Proof::None => {
                self.refuse(req.refusal(
                    device.mac,
                    "fetched a file of its stored templates without credentials (not through its tokenized URL)",
                ));
                nothing()
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
        found: Option<&Target<'_, '_>>,
        mac: Mac,
        req: &Request<'_>,
    ) -> provisor_store::Result<Outcome> {
        match self.options.unauthenticated {
            Unauthenticated::NotFound => Ok(Outcome::NotFound),
            Unauthenticated::CodePrompt => Ok(Outcome::CodePrompt),
            Unauthenticated::Challenge => {
                let stale = self
                    .digest_credentials(req)
                    .is_some_and(|c| self.nonces.check(&c.nonce, unix_now()) == NonceState::Stale);
                Ok(Outcome::Challenge { stale })
            }
            Unauthenticated::Bootstrap => match found {
                Some(f) => {
                    let mut generic = f.clone();
                    generic.stored = None;
                    let anyone = Some(("", self.cache.generation()));
                    self.render(&generic, detected(f, Some(mac), None), anyone, |d| {
                        Context::without_secrets(Some(f.vendor), d, self.plain_url())
                    })
                }
                None => Ok(Outcome::NotFound),
            },
        }
    }

    fn serve_common(&self, f: &Target<'_, '_>) -> provisor_store::Result<Outcome> {
        let anyone = Some(("", self.cache.generation()));
        self.render(f, detected(f, f.mac, None), anyone, |d| {
            Context::without_secrets(Some(f.vendor), d, self.plain_url())
        })
    }

    /// The armed device's one unauthenticated fetch: its file with no secrets, pointing it
    /// at its tokenized URL.
    fn hand_off(
        &self,
        device: &PhoneDevice,
        f: &Target<'_, '_>,
        req: &Request<'_>,
    ) -> provisor_store::Result<Outcome> {
        tracing::info!(mac = %device.mac, domain = device.domain_name, ip = %req.ip, file = req.file, "armed device handed its tokenized URL");
        self.recorder
            .contact(contact(f, device.mac, Some(device.id), req, false));
        let url = self.device_url(device.token.expose());
        self.render(f, detected(f, Some(device.mac), Some(device)), None, |d| {
            Context::without_secrets(Some(f.vendor), d, url)
        })
    }

    /// The device's file; `cached_as`: kept for the device's token digest, read under that
    /// generation.
    fn serve_device(
        &self,
        device: &PhoneDevice,
        f: &Target<'_, '_>,
        req: &Request<'_>,
        url: String,
        cached_as: Option<(&str, Option<u64>)>,
    ) -> provisor_store::Result<Outcome> {
        let provisioned = f.kind == FileKind::Device;
        let mut seen = contact(f, device.mac, Some(device.id), req, provisioned);
        if provisioned {
            seen.jobs = device.jobs.jobs.clone();
        }
        self.recorder.contact(seen);
        self.render(
            f,
            detected(f, Some(device.mac), Some(device)),
            cached_as,
            |d| Context::for_device(device, Some(f.vendor), d, url),
        )
    }

    /// The file of `f` for `detected`, made with `context`. `cached_as`: whose file it is
    /// (a device's token digest, or `""` for files without secrets, which are the same for
    /// anyone) and the generation it is read under, to take it from the cache or keep it.
    fn render(
        &self,
        f: &Target<'_, '_>,
        detected: Detected,
        cached_as: Option<(&str, Option<u64>)>,
        context: impl FnOnce(&Detected) -> Context,
    ) -> provisor_store::Result<Outcome> {
        let key = cached_as
            .filter(|(_, generation)| generation.is_some())
            .map(|(who, generation)| {
                let key = FileKey {
                    device: who.to_owned(),
                    vendor: f.vendor.id.clone(),
                    template: f.template.clone(),
                    mac: detected.mac,
                    model: detected.model.clone(),
                    firmware: detected.firmware.clone(),
                };
                (key, generation)
            });
        if let Some(made) = key.as_ref().and_then(|(k, _)| self.cache.file(k)) {
            return Ok(Outcome::File(made));
        }
        match self.make(f, context(&detected)) {
            Ok(rendered) => {
                for w in &rendered.warnings {
                    tracing::warn!(vendor = %f.vendor.id, template = f.template, "{w}");
                }
                let made = Arc::new(Made::new(rendered.body, &f.template));
                if let Some((k, generation)) = key {
                    self.cache.keep_file(generation, k, made.clone());
                }
                Ok(Outcome::File(made))
            }
            Err(e) => {
                tracing::error!(vendor = %f.vendor.id, template = f.template, error = %e, "a phone's file could not be rendered");
                Ok(Outcome::NotFound)
            }
        }
    }

    /// Renders the target's stored template (under the limits of stored templates) or
    /// its built-in one.
    fn make(&self, f: &Target<'_, '_>, context: Context) -> Result<Rendered, String> {
        match f.stored {
            // Stored templates are bounded but may still take a while: off the async
            // workers, so other requests go on meanwhile.
            Some(t) => off_the_workers(|| {
                self.renderer
                    .render_stored(&f.vendor.id, &t.name, &t.source, context)
                    .map_err(|e| e.to_string())
            }),
            None => self
                .renderer
                .render(&f.vendor.id, &f.template, context)
                .map_err(|e| e.to_string()),
        }
    }

    /// A device file added by one of the device's stored templates (a name with `{mac}`),
    /// asked for with the device's MAC.
    fn extra<'c, 'd>(
        &'c self,
        device: &'d PhoneDevice,
        file: &str,
        user_agent: Option<&str>,
    ) -> Option<Target<'c, 'd>> {
        let catalog = self.renderer.catalog();
        // Only the device's own vendor's files (any vendor's while it has none).
        let (stored, vendor) = device.templates.iter().find_map(|t| {
            (file_mac(&t.name, file) == Some(device.mac)
                && (device.vendor.is_empty() || device.vendor == t.vendor))
                .then(|| catalog.vendor(&t.vendor).map(|v| (t, v)))
                .flatten()
        })?;
        let agent = user_agent
            .and_then(|ua| catalog.user_agent(ua))
            .filter(|a| a.vendor.id == vendor.id);
        Some(Target {
            vendor,
            template: stored.name.clone(),
            kind: FileKind::Device,
            mac: Some(device.mac),
            model: agent.as_ref().and_then(|a| a.model.clone()),
            firmware: agent.and_then(|a| a.firmware),
            stored: Some(stored),
        })
    }

    /// What `device` would get for `file`, for its admins; secrets masked unless `reveal`.
    /// Whether the device's phone fetches a file named `file` (a preview can show it).
    pub fn fetches(&self, device: &PhoneDevice, file: &str) -> bool {
        self.preview_target(device, file).is_some()
    }

    /// What a preview of `file` for the device renders: a stored file of its own, or the
    /// catalog's device or common file of that name (for this MAC).
    fn preview_target<'c, 'd>(
        &'c self,
        device: &'d PhoneDevice,
        file: &str,
    ) -> Option<Target<'c, 'd>> {
        if let Some(t) = self.extra(device, file, None) {
            return Some(t);
        }
        match self.detect_for(device, file, None) {
            Detection::Found(f)
                if f.mac.is_none_or(|m| m == device.mac)
                    && matches!(f.rule.kind, FileKind::Device | FileKind::Common) =>
            {
                let t = Target::from_found(f);
                Some(if t.kind == FileKind::Device {
                    t.for_device(device)
                } else {
                    t
                })
            }
            _ => None,
        }
    }

    /// What `source`, stored as `vendor`'s template `name`, would make: for `device` (one
    /// of the vendor's phones), or for a sample phone with three lines; passwords masked.
    /// Checked first as an upload is (`Renderer::storable`), so a problem has its line and
    /// column. For the template editor's preview: the name it is stored under, and what it
    /// makes.
    pub fn try_template(
        &self,
        device: Option<&PhoneDevice>,
        vendor: &str,
        name: &str,
        source: &str,
    ) -> Result<(String, Rendered), provisor_render::Unstorable> {
        let name = off_the_workers(|| self.renderer.storable(vendor, name, source))?;
        let v = self.renderer.catalog().vendor(vendor);
        let mut context = match (device, v) {
            (Some(d), Some(v)) => {
                let detected = Detected {
                    vendor: v.id.clone(),
                    model: v.canonical_model(&d.model),
                    firmware: d.firmware.clone(),
                    mac: Some(d.mac),
                };
                Context::for_device(d, Some(v), &detected, self.own_url(d))
            }
            _ => Context::sample(vendor, "", 3),
        };
        context.mask_secrets();
        let rendered =
            off_the_workers(|| self.renderer.preview_stored(vendor, &name, source, context))
                .map_err(provisor_render::Unstorable::Problem)?;
        Ok((name, rendered))
    }

    pub fn preview(
        &self,
        device: &PhoneDevice,
        file: &str,
        reveal: bool,
    ) -> Result<Preview, PreviewError> {
        let target = self
            .preview_target(device, file)
            .ok_or_else(|| PreviewError::NoSuchFile(file.to_owned()))?;
        let detected = detected(&target, Some(device.mac), Some(device));
        let mut context = if target.kind == FileKind::Device {
            Context::for_device(device, Some(target.vendor), &detected, self.own_url(device))
        } else {
            Context::without_secrets(Some(target.vendor), &detected, self.plain_url())
        };
        if !reveal {
            context.mask_secrets();
        }
        let rendered = self
            .make(&target, context)
            .map_err(PreviewError::Template)?;
        Ok(Preview {
            file: file.to_owned(),
            vendor: target.vendor.id.clone(),
            template: target.template.clone(),
            source: match target.stored {
                None => TemplateSource::BuiltIn,
                Some(t) if t.from_category => TemplateSource::Category,
                Some(_) => TemplateSource::Domain,
            },
            kind: if target.kind == FileKind::Device {
                "device".into()
            } else {
                "common".into()
            },
            body: rendered.body,
            warnings: rendered.warnings,
            masked: !reveal,
        })
    }

    fn refuse(&self, refusal: Refusal) {
        tracing::info!(mac = %refusal.mac, ip = %refusal.ip, file = refusal.file, reason = refusal.reason, "phone fetch refused");
        self.recorder.refusal(refusal);
    }
}

/// Vendor, model and firmware as the request says, the device record filling gaps.
fn detected(f: &Target<'_, '_>, mac: Option<Mac>, device: Option<&PhoneDevice>) -> Detected {
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
    f: &Target<'_, '_>,
    mac: Mac,
    device_id: Option<i64>,
    req: &Request<'_>,
    provisioned: bool,
) -> Contact {
    let vendor: &Vendor = f.vendor;
    Contact {
        mac,
        device_id,
        jobs: Vec::new(),
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
