//! Self-service for users, signed in with their portal login: `/self/…`. A user asks for
//! a provisioning code (in a provisioning category), sees their phones and softphone apps,
//! gets QR codes for the apps and revokes an app installation.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use minijinja::context;
use provisor_domain::model::{Actor, Domain};
use provisor_store::{PageRequest, Session, SessionOf};
use serde::Deserialize;

use super::{
    PageError, PageResult, SELF, csrf_of, page, peer_ip, see, session_of, signin_form, signin_page,
    start_session,
};
use crate::AppState;
use crate::auth::Login;
use crate::net::Peer;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/self", get(home))
        .route("/self/signin", get(signin).post(signin_post))
        .route("/self/signout", post(signout))
        .route("/self/codes", post(create_code))
        .route("/self/installs/{id}/revoke", post(revoke))
        .route("/self/qr/acrobits.svg", get(acrobits_qr))
        .route("/self/apps/{app}", post(app))
}

/// A signed-in user.
pub struct Me {
    domain: Domain,
    username: String,
    secret: String,
}

impl FromRequestParts<AppState> for Me {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Response> {
        match session_of(st, SELF, &parts.headers).await {
            Ok(Some((secret, Session::User { domain, username }))) => {
                match st.store.domain_by_id(domain).await {
                    Ok(domain) => Ok(Me {
                        domain,
                        username,
                        secret,
                    }),
                    Err(e) => Err(PageError::from(e).into_response()),
                }
            }
            Ok(_) => Err(see("/self/signin")),
            Err(e) => Err(e.into_response()),
        }
    }
}

impl Me {
    fn actor(&self) -> Actor {
        Actor(format!("user:{}@{}", self.username, self.domain.name))
    }

    fn ctx(&self) -> minijinja::Value {
        context! {
            me => context! { name => self.username, domain => self.domain.name },
            csrf => csrf_of(&self.secret),
            realm => "/self",
        }
    }

    fn form<T: serde::de::DeserializeOwned>(&self, body: &[u8]) -> Result<T, PageError> {
        super::form(&self.secret, body).map_err(|e| e.back("/self"))
    }
}

async fn signin(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
) -> PageResult {
    super::signin_get(&st, SELF, &headers, peer.tls).await
}

async fn signin_post(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    let f = signin_form(SELF, &headers, &body)?;
    match crate::auth::portal_login(&st, &peer_ip(&peer), f.login.trim(), f.password).await? {
        Login::Locked(wait) => {
            Err(PageError::from(crate::error::ApiError::TooManyAttempts(wait)).back("/self/signin"))
        }
        Login::Refused | Login::Disabled(_) => signin_page(
            SELF,
            &headers,
            peer.tls,
            Some("The login or the password is not right."),
            StatusCode::UNAUTHORIZED,
        ),
        Login::Valid(p) => {
            let of = SessionOf::User {
                domain: p.domain.id,
                username: p.username,
            };
            start_session(&st, SELF, of, peer.tls, "/self").await
        }
    }
}

async fn signout(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    super::end_session(&st, SELF, &headers, &body, peer.tls).await
}

/// Which softphone apps the domain is set up for (their settings are there).
fn apps_ready(settings: &provisor_domain::settings::Settings) -> minijinja::Value {
    let has = |k: &str| {
        settings
            .get(k)
            .and_then(serde_json::Value::as_str)
            .is_some_and(|v| !v.is_empty())
    };
    context! {
        acrobits => has("acrobits_cloud_id"),
        sessiontalk => has("sessiontalk_provider_id"),
    }
}

async fn home(State(st): State<AppState>, me: Me) -> PageResult {
    let d = me.domain.id;
    let categories = crate::api::portal::provisioning_categories(&st, d).await?;
    let filter = provisor_domain::model::DeviceFilter {
        user: Some(me.username.clone()),
        ..Default::default()
    };
    let phones = st
        .store
        .list_devices(
            d,
            &filter,
            PageRequest {
                limit: 100,
                after: None,
            },
        )
        .await?;
    let installs = st.store.list_installs(d, &me.username).await?;
    let user = st.store.softphone_user(d, &me.username).await?;
    let settings = provisor_domain::settings::merge(&user.layers);
    page(
        "self.html",
        context! {
            categories, phones => phones.items, installs,
            apps => apps_ready(&settings),
            ..me.ctx()
        },
    )
}

#[derive(Deserialize)]
struct CodeForm {
    category: String,
}

async fn create_code(State(st): State<AppState>, me: Me, body: Bytes) -> PageResult {
    let f: CodeForm = me.form(&body)?;
    let issued =
        crate::api::portal::own_code(&st, &me.actor(), me.domain.id, &me.username, &f.category)
            .await
            .map_err(|e| PageError::from(e).back("/self"))?;
    let seconds = (issued.valid_until - chrono::Utc::now())
        .num_seconds()
        .max(0);
    page(
        "self_code.html",
        context! {
            code => issued.code.expose(), valid_until => issued.valid_until,
            seconds, category => issued.category,
            ..me.ctx()
        },
    )
}

async fn revoke(
    State(st): State<AppState>,
    me: Me,
    Path(id): Path<String>,
    body: Bytes,
) -> PageResult {
    let _: super::CsrfField = me.form(&body)?;
    let id: i64 = id.parse().map_err(|_| PageError::not_found())?;
    st.store
        .revoke_install(&me.actor(), me.domain.id, &me.username, id)
        .await
        .map_err(|e| PageError::from(e).back("/self"))?;
    Ok(see("/self"))
}

/// The Acrobits QR code without the password (the app asks for it).
async fn acrobits_qr(State(st): State<AppState>, me: Me) -> PageResult {
    let payload = crate::api::installs::qr_payload(
        &st,
        me.domain.id,
        &me.domain.name,
        &me.username,
        "acrobits",
        None,
    )
    .await?;
    let svg = crate::api::installs::qr_image(&payload, crate::qr::Format::Svg)?;
    Ok(super::no_store(
        ([(axum::http::header::CONTENT_TYPE, "image/svg+xml")], svg).into_response(),
    ))
}

#[derive(Deserialize)]
struct AppForm {
    /// The portal password again, for a QR code that carries it (SessionTalk, Acrobits).
    password: Option<String>,
}

/// A QR code for an app, on a page of its own: Linphone (a new installation each time),
/// or SessionTalk and Acrobits with the password re-entered (it is checked like a
/// sign-in, and the code carries it so the app signs in by itself).
async fn app(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    me: Me,
    Path(app): Path<String>,
    body: Bytes,
) -> PageResult {
    let f: AppForm = me.form(&body)?;
    let password = match app.as_str() {
        "linphone" => None,
        "sessiontalk" | "acrobits" => {
            let pw = f.password.unwrap_or_default();
            let login = format!("{}@{}", me.username, me.domain.name);
            match crate::auth::portal_login(&st, &peer_ip(&peer), &login, pw.clone()).await? {
                Login::Valid(_) => Some(pw),
                Login::Locked(wait) => {
                    return Err(
                        PageError::from(crate::error::ApiError::TooManyAttempts(wait))
                            .back("/self"),
                    );
                }
                _ => return Err(PageError::bad("The password is not right.").back("/self")),
            }
        }
        _ => return Err(PageError::not_found()),
    };
    let payload = crate::api::installs::qr_payload(
        &st,
        me.domain.id,
        &me.domain.name,
        &me.username,
        &app,
        password.as_deref(),
    )
    .await
    .map_err(|e| PageError::from(e).back("/self"))?;
    let svg = crate::api::installs::qr_image(&payload, crate::qr::Format::Svg)?;
    let svg = String::from_utf8_lossy(&svg).into_owned();
    let link = (app == "linphone").then_some(payload);
    page(
        "self_app.html",
        context! {
            app, qr => minijinja::Value::from_safe_string(svg), link,
            ..me.ctx()
        },
    )
}
