//! The web console for administrators (`/console`) and the self-service pages for users
//! (`/self`): server-rendered HTML (minijinja templates and a style sheet built into the
//! binary), forms that work without JavaScript, and a little script for what is nicer
//! live (a code's countdown, a template's preview).
//!
//! Sign-in makes a session (`ConsoleStore`): a random cookie value, kept in the database
//! only as its SHA-256 digest, so every node of an installation knows it. The cookies are
//! HttpOnly, SameSite=Strict, limited to their path (`/console` or `/self`, so a user's
//! session is never sent to the console), and Secure over HTTPS. Every form carries a CSRF
//! token derived from the session's secret (HMAC), checked on every POST, and a POST whose
//! `Origin` names another host is refused. Sign-in forms carry a token tied to a cookie of
//! their own. Sign-in attempts count against the limiter of codes and portal logins.
//!
//! Handlers build the same inputs the API takes (the model types, validated the same way)
//! and call the store; a domain admin's pages reach their own domain only, and any other
//! domain's page is the same 404 as one that does not exist.

mod admin;
mod editor;
mod people;
mod user;

use std::sync::OnceLock;

use axum::Router;
use axum::extract::Request;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, HOST, ORIGIN, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use hmac::{Hmac, Mac as _};
use minijinja::Environment;
use provisor_domain::model::{Domain, DomainId, Role};
use provisor_store::{SessionLifetime, StoreError};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::Sha256;

use crate::AppState;
use crate::error::ApiError;
use crate::net::Peer;

/// How long a session lasts: 12 hours from sign-in, 1 hour without use.
pub const SESSION: SessionLifetime = SessionLifetime {
    absolute: std::time::Duration::from_secs(12 * 3600),
    idle: std::time::Duration::from_secs(3600),
};

/// Largest form the console reads (templates are edited in forms).
pub const MAX_FORM: usize = 512 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console/static/console.css", get(style))
        .route("/console/static/console.js", get(script))
        .merge(admin::router())
        .merge(editor::router())
        .merge(people::router())
        .merge(user::router())
        .layer(axum::middleware::from_fn(same_origin))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM))
}

async fn style() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("static/console.css"),
    )
}

async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("static/console.js"),
    )
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, kind),
            (CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// Refuses a state-changing request whose `Origin` is another host than the one asked
/// (SameSite cookies and CSRF tokens are the main defence; this is one more).
async fn same_origin(request: Request, next: Next) -> Response {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let headers = request.headers();
        let host = headers.get(HOST).and_then(|h| h.to_str().ok());
        let origin = headers.get(ORIGIN).and_then(|h| h.to_str().ok());
        if let Some(origin) = origin {
            let origin_host = origin.split_once("://").map(|(_, h)| h);
            if origin == "null" || origin_host != host {
                return PageError::forbidden("this form was sent from another site")
                    .into_response();
            }
        }
    }
    next.run(request).await
}

// ---------------------------------------------------------------------------------------
// Pages

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        macro_rules! templates {
            ($($name:literal),+ $(,)?) => {
                $(env.add_template($name, include_str!(concat!("templates/", $name)))
                    .expect(concat!("console template ", $name));)+
            };
        }
        templates!(
            "base.html",
            "macros.html",
            "error.html",
            "signin.html",
            "domains.html",
            "domain.html",
            "users.html",
            "user.html",
            "code.html",
            "devices.html",
            "device.html",
            "rollouts.html",
            "rollout.html",
            "audit.html",
            "jobs.html",
            "webhooks.html",
            "templates.html",
            "admins.html",
            "template.html",
            "self.html",
            "self_code.html",
            "self_app.html",
        );
        env.add_filter("when", when);
        env.add_filter("urlencode", |v: &str| crate::url_component(v));
        env
    })
}

/// A time as the console shows it: `2026-12-04 15:03 UTC`; empty for none.
fn when(value: minijinja::Value) -> String {
    value
        .as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M UTC")
                .to_string()
        })
        .unwrap_or_default()
}

/// The page `name` rendered with `ctx`.
fn page(name: &str, ctx: minijinja::Value) -> Result<Response, PageError> {
    let html = environment()
        .get_template(name)
        .and_then(|t| t.render(ctx))
        .map_err(|e| PageError::from(ApiError::Internal(format!("console page {name}: {e:#}"))))?;
    Ok(no_store(Html(html).into_response()))
}

/// Pages show data of one signed-in person: never kept by caches.
fn no_store(mut r: Response) -> Response {
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A redirect after a form (303: the browser follows with GET).
fn see(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// What a console request comes to when it fails: a page with the status and the reason,
/// and a way back.
#[derive(Debug)]
pub struct PageError {
    status: StatusCode,
    message: String,
    back: Option<String>,
    retry_after: Option<u64>,
}

impl PageError {
    fn forbidden(why: &str) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            message: why.into(),
            back: None,
            retry_after: None,
        }
    }

    fn bad(why: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: why.into(),
            back: None,
            retry_after: None,
        }
    }

    fn not_found() -> Self {
        ApiError::NotFound("page").into()
    }

    fn message(&self) -> &str {
        &self.message
    }

    /// The same error, with a link back to `to`.
    fn back(mut self, to: impl Into<String>) -> Self {
        self.back = Some(to.into());
        self
    }
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        let retry_after = match &e {
            ApiError::TooManyAttempts(wait) => Some(wait.as_secs().max(1)),
            _ => None,
        };
        let status = e.status();
        let message = match e {
            ApiError::Internal(cause) => {
                tracing::error!(cause = %cause, "console request failed");
                "The server could not complete the request; the cause is in its log.".into()
            }
            ApiError::Invalid(i) => format!("{}: {}", i.field, i.reason),
            other => {
                let text = other.to_string();
                let mut c = text.chars();
                c.next()
                    .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                    .unwrap_or_default()
            }
        };
        Self {
            status,
            message,
            back: None,
            retry_after,
        }
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<provisor_domain::Invalid> for PageError {
    fn from(e: provisor_domain::Invalid) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let body = environment()
            .get_template("error.html")
            .and_then(|t| {
                t.render(minijinja::context! {
                    title, message => self.message, back => self.back, status => self.status.as_u16()
                })
            })
            .unwrap_or_else(|_| format!("{title}: {}", self.message));
        let mut r = no_store((self.status, Html(body)).into_response());
        if let Some(wait) = self.retry_after {
            r.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, HeaderValue::from(wait));
        }
        r
    }
}

type PageResult = Result<Response, PageError>;

// ---------------------------------------------------------------------------------------
// Cookies, sessions, CSRF

/// Where a kind of session lives: its cookie and the path it is sent to.
#[derive(Clone, Copy)]
struct Realm {
    cookie: &'static str,
    signin_cookie: &'static str,
    path: &'static str,
}

const CONSOLE: Realm = Realm {
    cookie: "provisor_console",
    signin_cookie: "provisor_console_signin",
    path: "/console",
};

const SELF: Realm = Realm {
    cookie: "provisor_self",
    signin_cookie: "provisor_self_signin",
    path: "/self",
};

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` for `name` in `realm`: `Some(value)` sets it for the session's life,
/// `None` removes it.
fn set_cookie(realm: Realm, name: &str, value: Option<&str>, tls: bool) -> HeaderValue {
    let secure = if tls { "; Secure" } else { "" };
    let (value, age) = match value {
        Some(v) => (v, SESSION.absolute.as_secs()),
        None => ("", 0),
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={}; HttpOnly; SameSite=Strict; Max-Age={age}{secure}",
        realm.path
    ))
    .expect("cookie values are URL-safe base64")
}

/// The CSRF token of a secret (a session's cookie, or a sign-in form's): an HMAC of it,
/// so it is never stored and cannot be made without the cookie.
fn csrf_mac(secret: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(b"provisor console csrf");
    mac
}

fn csrf_of(secret: &str) -> String {
    hex::encode(csrf_mac(secret).finalize().into_bytes())
}

fn csrf_matches(secret: &str, presented: &str) -> bool {
    hex::decode(presented).is_ok_and(|bytes| csrf_mac(secret).verify_slice(&bytes).is_ok())
}

#[derive(Deserialize)]
struct CsrfField {
    csrf: String,
}

/// The form in `body`, if its CSRF token is that of `secret`.
fn form<T: DeserializeOwned>(secret: &str, body: &[u8]) -> Result<T, PageError> {
    let token: CsrfField = serde_urlencoded::from_bytes(body)
        .map_err(|_| PageError::forbidden("the form has no CSRF token; reload the page"))?;
    if !csrf_matches(secret, &token.csrf) {
        return Err(PageError::forbidden(
            "the form has expired (or came from elsewhere); reload the page and try again",
        ));
    }
    serde_urlencoded::from_bytes(body)
        .map_err(|e| PageError::bad(format!("the form cannot be read: {e}")))
}

/// The caller's address, as the limiter counts it.
fn peer_ip(peer: &Peer) -> String {
    provisor_domain::phone::canonical_ip(peer.addr.ip()).to_string()
}

/// The session cookie of `realm` in the request, with the session it names.
async fn session_of(
    st: &AppState,
    realm: Realm,
    headers: &HeaderMap,
) -> Result<Option<(String, provisor_store::Session)>, PageError> {
    let Some(secret) = cookie(headers, realm.cookie) else {
        return Ok(None);
    };
    let found = st
        .store
        .session(&provisor_domain::token::digest(&secret), SESSION.idle)
        .await?;
    Ok(found.map(|s| (secret, s)))
}

/// Starts a session for `of`, answering with a redirect to `to` that sets its cookie and
/// removes the sign-in form's.
async fn start_session(
    st: &AppState,
    realm: Realm,
    of: provisor_store::SessionOf,
    tls: bool,
    to: &str,
) -> PageResult {
    let secret = provisor_domain::token::generate().secret;
    st.store
        .create_session(
            &provisor_domain::token::digest(secret.expose()),
            &of,
            SESSION,
        )
        .await?;
    let mut r = see(to);
    let h = r.headers_mut();
    h.append(
        SET_COOKIE,
        set_cookie(realm, realm.cookie, Some(secret.expose()), tls),
    );
    h.append(
        SET_COOKIE,
        set_cookie(realm, realm.signin_cookie, None, tls),
    );
    Ok(r)
}

/// Ends the session of the request (if any) and goes to the realm's sign-in page.
async fn end_session(
    st: &AppState,
    realm: Realm,
    headers: &HeaderMap,
    body: &[u8],
    tls: bool,
) -> PageResult {
    if let Some(secret) = cookie(headers, realm.cookie) {
        let _: CsrfField = form(&secret, body)?;
        st.store
            .end_session(&provisor_domain::token::digest(&secret))
            .await?;
    }
    let mut r = see(&format!("{}/signin", realm.path));
    r.headers_mut()
        .append(SET_COOKIE, set_cookie(realm, realm.cookie, None, tls));
    Ok(r)
}

/// A sign-in page: its form's CSRF token is tied to a cookie of its own (made here if the
/// browser has none yet).
fn signin_page(
    realm: Realm,
    headers: &HeaderMap,
    tls: bool,
    error: Option<&str>,
    status: StatusCode,
) -> PageResult {
    let (secret, fresh) = match cookie(headers, realm.signin_cookie) {
        Some(s) => (s, false),
        None => (
            provisor_domain::token::generate()
                .secret
                .expose()
                .to_owned(),
            true,
        ),
    };
    let mut r = page(
        "signin.html",
        minijinja::context! {
            realm => realm.path,
            title => if realm.path == CONSOLE.path { "Sign in to the console" } else { "Sign in" },
            csrf => csrf_of(&secret),
            error,
        },
    )?;
    *r.status_mut() = status;
    if fresh {
        r.headers_mut().append(
            SET_COOKIE,
            set_cookie(realm, realm.signin_cookie, Some(&secret), tls),
        );
    }
    Ok(r)
}

#[derive(Deserialize)]
struct SignIn {
    login: String,
    password: String,
}

/// The sign-in form of the request, if its token matches the sign-in cookie.
fn signin_form(realm: Realm, headers: &HeaderMap, body: &[u8]) -> Result<SignIn, PageError> {
    let secret = cookie(headers, realm.signin_cookie).ok_or_else(|| {
        PageError::forbidden("the sign-in form has expired; reload the page")
            .back(format!("{}/signin", realm.path))
    })?;
    form(&secret, body).map_err(|e| e.back(format!("{}/signin", realm.path)))
}

/// The realm's sign-in page, or its home for a browser that is signed in already.
async fn signin_get(st: &AppState, realm: Realm, headers: &HeaderMap, tls: bool) -> PageResult {
    if session_of(st, realm, headers).await?.is_some() {
        return Ok(see(realm.path));
    }
    signin_page(realm, headers, tls, None, StatusCode::OK)
}

/// A domain the signed-in administrator may see: operators any, a domain admin only their
/// own (any other is "not found", like one that does not exist).
async fn visible_domain(
    st: &AppState,
    scope: Option<DomainId>,
    name: &str,
) -> Result<Domain, PageError> {
    let domain = st.store.domain(&name.to_ascii_lowercase()).await?;
    if scope.is_some_and(|own| own != domain.id) {
        return Err(ApiError::NotFound("domain").into());
    }
    Ok(domain)
}

/// An optional form field: empty text is none.
fn filled(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn role_label(role: Role) -> &'static str {
    match role {
        Role::Operator => "operator",
        Role::DomainAdmin => "domain admin",
    }
}
