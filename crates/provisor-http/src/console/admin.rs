//! The administrators' console: `/console/…`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use minijinja::context;
use provisor_domain::Mac;
use provisor_domain::model::{
    Actor, Domain, DomainId, NewCategory, NewDevice, NewDomain, NewSipAccount, NewUser, Role,
};
use provisor_store::{PageRequest, Session, SessionOf};
use serde::Deserialize;
use serde_json::json;

use super::{
    CONSOLE, PageError, PageResult, csrf_of, filled, page, peer_ip, see, session_of, signin_form,
    signin_page, start_session, visible_domain,
};
use crate::AppState;
use crate::auth::Principal;
use crate::net::Peer;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(home))
        .route("/console/signin", get(signin).post(signin_post))
        .route("/console/signout", post(signout))
        .route("/console/domains", post(create_domain))
        .route("/console/d/{domain}", get(domain))
        .route("/console/d/{domain}/categories", post(create_category))
        .route("/console/d/{domain}/users", get(users).post(create_user))
        .route("/console/d/{domain}/users/{user}", get(user))
        .route(
            "/console/d/{domain}/users/{user}/accounts",
            post(create_account),
        )
        .route("/console/d/{domain}/users/{user}/codes", post(create_code))
        .route(
            "/console/d/{domain}/devices",
            get(devices).post(create_device),
        )
        .route("/console/d/{domain}/devices/{mac}", get(device))
        .route(
            "/console/d/{domain}/rollouts",
            get(rollouts).post(create_rollout),
        )
        .route("/console/d/{domain}/rollouts/{id}", get(rollout))
        .route("/console/d/{domain}/jobs", get(jobs).post(create_job))
        .route("/console/d/{domain}/jobs/{id}", post(change_job))
        .route(
            "/console/d/{domain}/webhooks",
            get(webhooks).post(create_webhook),
        )
        .route(
            "/console/d/{domain}/webhooks/{id}/remove",
            post(remove_webhook),
        )
        .route("/console/d/{domain}/audit", get(audit))
}

/// A signed-in administrator.
pub(super) struct Signed {
    principal: Principal,
    name: String,
    secret: String,
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Response> {
        match session_of(st, CONSOLE, &parts.headers).await {
            Ok(Some((secret, Session::Admin { admin, domain }))) => Ok(Signed {
                principal: Principal {
                    actor: Actor(format!("admin:{}", admin.name)),
                    role: admin.role,
                    domain,
                },
                name: admin.name,
                secret,
            }),
            Ok(_) => Err(see("/console/signin")),
            Err(e) => Err(e.into_response()),
        }
    }
}

impl Signed {
    pub(super) fn principal(&self) -> &Principal {
        &self.principal
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn actor(&self) -> &Actor {
        &self.principal.actor
    }

    fn operator(&self) -> bool {
        self.principal.role == Role::Operator
    }

    /// What every page shows of the administrator, and the CSRF token of its forms.
    pub(super) fn ctx(&self, domain: Option<&Domain>, section: &str) -> minijinja::Value {
        context! {
            me => context! {
                name => self.name,
                role => super::role_label(self.principal.role),
                operator => self.operator(),
            },
            csrf => csrf_of(&self.secret),
            domain => domain.map(|d| d.name.clone()),
            section,
        }
    }

    pub(super) fn form<T: serde::de::DeserializeOwned>(&self, body: &[u8]) -> Result<T, PageError> {
        super::form(&self.secret, body)
    }

    pub(super) async fn domain(&self, st: &AppState, name: &str) -> Result<Domain, PageError> {
        visible_domain(st, self.principal.domain, name).await
    }
}

/// Page-specific values with the common context.
pub(super) fn with(base: minijinja::Value, more: minijinja::Value) -> minijinja::Value {
    context! { ..more, ..base }
}

pub(super) fn domain_path(d: &Domain) -> String {
    format!("/console/d/{}", crate::url_component(&d.name))
}

// ---------------------------------------------------------------------------------------
// Sign-in

async fn signin(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
) -> PageResult {
    super::signin_get(&st, CONSOLE, &headers, peer.tls).await
}

async fn signin_post(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    let f = signin_form(CONSOLE, &headers, &body)?;
    let password = provisor_domain::secret::SecretString::new(f.password);
    match crate::auth::admin_login(&st, &peer_ip(&peer), &f.login, &password).await? {
        Err(wait) => Err(
            PageError::from(crate::error::ApiError::TooManyAttempts(wait)).back("/console/signin"),
        ),
        Ok(None) => signin_page(
            CONSOLE,
            &headers,
            peer.tls,
            Some("The name or the password is not right."),
            StatusCode::UNAUTHORIZED,
        ),
        Ok(Some(signed)) => {
            start_session(
                &st,
                CONSOLE,
                SessionOf::Admin(signed.admin.id),
                peer.tls,
                "/console",
            )
            .await
        }
    }
}

async fn signout(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    super::end_session(&st, CONSOLE, &headers, &body, peer.tls).await
}

// ---------------------------------------------------------------------------------------
// Domains and categories

#[derive(Deserialize)]
struct After {
    after: Option<String>,
}

impl After {
    fn page(&self, limit: u32) -> Result<PageRequest, PageError> {
        let after = match filled(&self.after) {
            Some(v) => Some(
                v.parse()
                    .map_err(|_| PageError::bad("'after' is not a number"))?,
            ),
            None => None,
        };
        Ok(PageRequest { limit, after })
    }
}

async fn home(State(st): State<AppState>, a: Signed, Query(q): Query<After>) -> PageResult {
    if let Some(own) = a.principal.domain {
        let d = st.store.domain_by_id(own).await?;
        return Ok(see(&domain_path(&d)));
    }
    let domains = st.store.list_domains(q.page(50)?).await?;
    page(
        "domains.html",
        with(
            a.ctx(None, "domains"),
            context! { domains => domains.items, next => domains.next },
        ),
    )
}

#[derive(Deserialize)]
struct DomainForm {
    name: String,
    #[serde(default)]
    description: String,
}

async fn create_domain(State(st): State<AppState>, a: Signed, body: Bytes) -> PageResult {
    let f: DomainForm = a.form(&body)?;
    if !a.operator() {
        return Err(PageError::forbidden("only operators add domains"));
    }
    let new: NewDomain =
        serde_json::from_value(json!({"name": f.name, "description": f.description}))
            .map_err(|e| PageError::bad(e.to_string()))?;
    let d = st
        .store
        .create_domain(a.actor(), &new.validate()?)
        .await
        .map_err(|e| PageError::from(e).back("/console"))?;
    Ok(see(&domain_path(&d)))
}

/// The names of a domain's categories, for a form's choice.
pub(super) async fn category_names(st: &AppState, d: DomainId) -> Result<Vec<String>, PageError> {
    Ok(categories_of(st, d)
        .await?
        .into_iter()
        .map(|c| c.name)
        .collect())
}

/// The catalog's vendors (id and name), for a form's choice.
pub(super) fn vendor_choices(st: &AppState) -> Vec<minijinja::Value> {
    st.phones
        .renderer()
        .catalog()
        .vendors()
        .iter()
        .map(|v| context! { id => v.id, name => v.name })
        .collect()
}

/// Every category of a domain (a domain has few).
async fn categories_of(
    st: &AppState,
    d: DomainId,
) -> Result<Vec<provisor_domain::model::Category>, PageError> {
    Ok(provisor_store::all_pages(|p| st.store.list_categories(d, p)).await?)
}

async fn domain(State(st): State<AppState>, a: Signed, Path(name): Path<String>) -> PageResult {
    let d = a.domain(&st, &name).await?;
    let categories = categories_of(&st, d.id).await?;
    let rollouts = st
        .store
        .list_rollouts(
            d.id,
            PageRequest {
                limit: 5,
                after: None,
            },
        )
        .await?;
    page(
        "domain.html",
        with(
            a.ctx(Some(&d), "overview"),
            context! { d => d, categories, rollouts => rollouts.items },
        ),
    )
}

#[derive(Deserialize)]
struct CategoryForm {
    name: String,
    provisioning: Option<String>,
}

async fn create_category(
    State(st): State<AppState>,
    a: Signed,
    Path(name): Path<String>,
    body: Bytes,
) -> PageResult {
    let d = a.domain(&st, &name).await?;
    let f: CategoryForm = a.form(&body)?;
    let back = domain_path(&d);
    let new: NewCategory =
        serde_json::from_value(json!({"name": f.name, "provisioning": f.provisioning.is_some()}))
            .map_err(|e| PageError::bad(e.to_string()))?;
    st.store
        .create_category(
            a.actor(),
            d.id,
            &new.validate().map_err(|e| PageError::from(e).back(&back))?,
        )
        .await
        .map_err(|e| PageError::from(e).back(&back))?;
    Ok(see(&back))
}

// ---------------------------------------------------------------------------------------
// Users, their SIP accounts, codes

async fn users(
    State(st): State<AppState>,
    a: Signed,
    Path(name): Path<String>,
    Query(q): Query<After>,
    Query(search): Query<UserSearch>,
) -> PageResult {
    let d = a.domain(&st, &name).await?;
    let search = filled(&search.q);
    let users = st.store.list_users(d.id, search, q.page(50)?).await?;
    let next_query = users.next.map(|n| {
        let n = n.to_string();
        let mut query = vec![("after", n.as_str())];
        if let Some(s) = search {
            query.push(("q", s));
        }
        serde_urlencoded::to_string(&query).unwrap_or_default()
    });
    page(
        "users.html",
        with(
            a.ctx(Some(&d), "users"),
            context! { users => users.items, next_query, q => search.unwrap_or_default() },
        ),
    )
}

#[derive(Deserialize)]
struct UserSearch {
    q: Option<String>,
}

#[derive(Deserialize)]
struct UserForm {
    username: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    email: String,
    password: Option<String>,
}

async fn create_user(
    State(st): State<AppState>,
    a: Signed,
    Path(name): Path<String>,
    body: Bytes,
) -> PageResult {
    let d = a.domain(&st, &name).await?;
    let f: UserForm = a.form(&body)?;
    let back = format!("{}/users", domain_path(&d));
    let new: NewUser = serde_json::from_value(json!({
        "username": f.username, "display_name": f.display_name, "email": f.email,
        "password": filled(&f.password),
    }))
    .map_err(|e| PageError::bad(e.to_string()))?;
    let new = new.validate().map_err(|e| PageError::from(e).back(&back))?;
    let hash = crate::api::users::hash_password(new.password.clone()).await?;
    let u = st
        .store
        .create_user(a.actor(), d.id, &new, hash.as_deref())
        .await
        .map_err(|e| PageError::from(e).back(&back))?;
    Ok(see(&format!(
        "{back}/{}",
        crate::url_component(&u.username)
    )))
}

async fn user(
    State(st): State<AppState>,
    a: Signed,
    Path((name, username)): Path<(String, String)>,
) -> PageResult {
    let d = a.domain(&st, &name).await?;
    let u = st.store.user(d.id, &username).await?;
    let all = PageRequest {
        limit: PageRequest::MAX_LIMIT,
        after: None,
    };
    let accounts = st.store.list_accounts(d.id, Some(&u.username), all).await?;
    let filter = provisor_domain::model::DeviceFilter {
        user: Some(u.username.clone()),
        ..Default::default()
    };
    let devices = st
        .store
        .list_devices(
            d.id,
            &filter,
            PageRequest {
                limit: 100,
                after: None,
            },
        )
        .await?;
    let installs = st.store.list_installs(d.id, &u.username).await?;
    let categories = category_names(&st, d.id).await?;
    page(
        "user.html",
        with(
            a.ctx(Some(&d), "users"),
            context! { u, accounts => accounts.items, devices => devices.items, installs, categories },
        ),
    )
}

#[derive(Deserialize)]
struct AccountForm {
    sip_user: String,
    password: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    auth_user: String,
    #[serde(default)]
    registrar: String,
    #[serde(default)]
    transport: String,
}

async fn create_account(
    State(st): State<AppState>,
    a: Signed,
    Path((name, username)): Path<(String, String)>,
    body: Bytes,
) -> PageResult {
    let d = a.domain(&st, &name).await?;
    let f: AccountForm = a.form(&body)?;
    let back = format!(
        "{}/users/{}",
        domain_path(&d),
        crate::url_component(&username)
    );
    let mut v = json!({
        "sip_user": f.sip_user, "password": f.password, "display_name": f.display_name,
        "auth_user": f.auth_user, "registrar": f.registrar,
    });
    if !f.transport.trim().is_empty() {
        v["transport"] = f.transport.trim().into();
    }
    let new: NewSipAccount =
        serde_json::from_value(v).map_err(|e| PageError::bad(e.to_string()).back(&back))?;
    let new = new.validate().map_err(|e| PageError::from(e).back(&back))?;
    st.store
        .create_account(a.actor(), d.id, &username, &new)
        .await
        .map_err(|e| PageError::from(e).back(&back))?;
    Ok(see(&back))
}

#[derive(Deserialize)]
struct CodeForm {
    category: Option<String>,
}

async fn create_code(
    State(st): State<AppState>,
    a: Signed,
    Path((name, username)): Path<(String, String)>,
    body: Bytes,
) -> PageResult {
    let d = a.domain(&st, &name).await?;
    let f: CodeForm = a.form(&body)?;
    let back = format!(
        "{}/users/{}",
        domain_path(&d),
        crate::url_component(&username)
    );
    let issued = st
        .store
        .create_code(a.actor(), d.id, filled(&f.category), &username)
        .await
        .map_err(|e| PageError::from(e).back(&back))?;
    page(
        "code.html",
        with(
            a.ctx(Some(&d), "users"),
            context! { code => issued.code.expose(), valid_until => issued.valid_until, user => issued.user, category => issued.category, back },
        ),
    )
}

// ---------------------------------------------------------------------------------------
// Devices

#[derive(Deserialize)]
struct DeviceSearch {
    mac: Option<String>,
    user: Option<String>,
    category: Option<String>,
    state: Option<String>,
    after: Option<String>,
}

async fn devices(
    State(st): State<AppState>,
    a: Signed,
    Path(name): Path<String>,
    Query(q): Query<DeviceSearch>,
) -> PageResult {
    let d = a.domain(&st, &name).await?;
    let filter = provisor_domain::model::DeviceFilter {
        mac: filled(&q.mac).map(Mac::parse).transpose()?,
        user: filled(&q.user).map(str::to_owned),
        category: filled(&q.category).map(str::to_owned),
        state: filled(&q.state).map(str::parse).transpose()?,
    };
    let page_req = After {
        after: q.after.clone(),
    }
    .page(50)?;
    let found = st.store.list_devices(d.id, &filter, page_req).await?;
    // The next page's link keeps the filter.
    let mut query: Vec<(&str, &str)> = [
        ("mac", &q.mac),
        ("user", &q.user),
        ("category", &q.category),
        ("state", &q.state),
    ]
    .into_iter()
    .filter_map(|(k, v)| filled(v).map(|v| (k, v)))
    .collect();
    let next = found.next.map(|n| n.to_string());
    if let Some(n) = &next {
        query.push(("after", n));
    }
    let next_query = next
        .as_ref()
        .map(|_| serde_urlencoded::to_string(&query).unwrap_or_default());
    let categories = category_names(&st, d.id).await?;
    let vendors = vendor_choices(&st);
    page(
        "devices.html",
        with(
            a.ctx(Some(&d), "devices"),
            context! {
                devices => found.items, next_query, categories, vendors,
                q => context! { mac => q.mac, user => q.user, category => q.category, state => q.state },
                states => provisor_domain::model::DeviceState::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            },
        ),
    )
}

#[derive(Deserialize)]
struct DeviceForm {
    mac: String,
    #[serde(default)]
    vendor: String,
    #[serde(default)]
    model: String,
    category: Option<String>,
    user: Option<String>,
    /// SIP users, separated by commas or spaces, in line order.
    #[serde(default)]
    lines: String,
}

async fn create_device(
    State(st): State<AppState>,
    a: Signed,
    Path(name): Path<String>,
    body: Bytes,
) -> PageResult {
    let d = a.domain(&st, &name).await?;
    let f: DeviceForm = a.form(&body)?;
    let back = format!("{}/devices", domain_path(&d));
    let lines: Vec<&str> = f
        .lines
        .split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let new: NewDevice = serde_json::from_value(json!({
        "mac": f.mac.trim(), "vendor": f.vendor, "model": f.model,
        "category": filled(&f.category), "user": filled(&f.user), "lines": lines,
    }))
    .map_err(|e| PageError::bad(e.to_string()).back(&back))?;
    let new = new.validate().map_err(|e| PageError::from(e).back(&back))?;
    let device = st
        .store
        .create_device(a.actor(), d.id, &new)
        .await
        .map_err(|e| PageError::from(e).back(&back))?;
    Ok(see(&format!("{back}/{}", device.mac)))
}

/// File names a device of each vendor fetches, to offer for a preview (`{mac}`, `{MAC}`
/// and `{model}` filled in); those the device's catalog entry does not know are left out.
const PREVIEW_FILES: &[&str] = &[
    "{mac}.boot",
    "{mac}.cfg",
    "{mac}-phone.cfg",
    "{MAC}.xml",
    "{mac}.xml",
    "cfg{mac}",
    "cfg{mac}.xml",
    "spa{mac}.xml",
    "snom{model}-{MAC}.htm",
    "Config{MAC}.cfg",
];

#[derive(Deserialize)]
struct PreviewQuery {
    file: Option<String>,
}

async fn device(
    State(st): State<AppState>,
    a: Signed,
    Path((name, mac)): Path<(String, String)>,
    Query(q): Query<PreviewQuery>,
) -> PageResult {
    let d = a.domain(&st, &name).await?;
    let mac = Mac::parse(&mac).map_err(|_| PageError::not_found())?;
    let phones = st.phones.clone();
    let detail =
        provisor_store::device_detail(st.store.as_ref(), d.id, mac, |t| phones.device_url(t))
            .await?;
    let refusals = st
        .store
        .list_refusals(
            d.id,
            mac,
            PageRequest {
                limit: 20,
                after: None,
            },
        )
        .await?;
    let phone = st
        .store
        .phone_by_mac(mac)
        .await?
        .filter(|p| p.domain == d.id);
    let model = detail.device.model.replace(' ', "");
    let files: Vec<String> = match &phone {
        Some(p) => PREVIEW_FILES
            .iter()
            .map(|f| {
                f.replace("{mac}", &mac.to_string())
                    .replace("{MAC}", &mac.to_upper())
                    .replace("{model}", &model)
            })
            .filter(|f| st.phones.fetches(p, f))
            .collect(),
        None => Vec::new(),
    };
    let preview = match (&phone, filled(&q.file)) {
        (Some(p), Some(file)) => Some(match st.phones.preview(p, file, false) {
            Ok(pv) => {
                context! { file, body => pv.body, template => pv.template, warnings => pv.warnings, masked => pv.masked }
            }
            Err(e) => context! { file, error => e.to_string() },
        }),
        _ => None,
    };
    page(
        "device.html",
        with(
            a.ctx(Some(&d), "devices"),
            context! { dev => detail.device, provisioning => detail.provisioning, refusals => refusals.items, files, preview },
        ),
    )
}

// ---------------------------------------------------------------------------------------
// Rollouts

async fn rollouts(
    State(st): State<AppState>,
    a: Signed,
    Path(name): Path<String>,
    Query(q): Query<After>,
) -> PageResult {
    let d = a.domain(&st, &name).await?;
    let list = st.store.list_rollouts(d.id, q.page(50)?).await?;
    let categories = category_names(&st, d.id).await?;
    page(
        "rollouts.html",
        with(
            a.ctx(Some(&d), "rollouts"),
            context! { rollouts => list.items, next => list.next, categories },
        ),
    )
}

#[derive(Deserialize)]
struct RolloutForm {
    category: Option<String>,
    #[serde(default)]
    phone: String,
    /// User names, one per line (or separated by commas or spaces).
    #[serde(default)]
    users: String,
    /// Every user of the domain instead.
    all: Option<String>,
}

async fn create_rollout(
    State(st): State<AppState>,
    a: Signed,
    Path(name): Path<String>,
    body: Bytes,
) -> PageResult {
    let d = a.domain(&st, &name).await?;
    let f: RolloutForm = a.form(&body)?;
    let back = format!("{}/rollouts", domain_path(&d));
    let users: Vec<String> = if f.all.is_some() {
        provisor_store::all_pages(|p| st.store.list_users(d.id, None, p))
            .await?
            .into_iter()
            .map(|u| u.username)
            .collect()
    } else {
        f.users
            .split(['\n', '\r', ',', ' ', '\t'])
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let r = st
        .store
        .create_rollout(a.actor(), d.id, filled(&f.category), f.phone.trim(), &users)
        .await
        .map_err(|e| PageError::from(e).back(&back))?;
    Ok(see(&format!("{back}/{}", r.id)))
}

async fn rollout(
    State(st): State<AppState>,
    a: Signed,
    Path((name, id)): Path<(String, String)>,
) -> PageResult {
    let d = a.domain(&st, &name).await?;
    let (id, csv) = crate::api::rollouts::rollout_id(&id).ok_or_else(PageError::not_found)?;
    let (r, entries) = st.store.rollout(d.id, id).await?;
    if csv {
        return Ok(super::no_store(crate::api::rollouts::csv_answer(
            id, &entries,
        )));
    }
    let entries: Vec<_> = entries
        .iter()
        .map(|e| {
            context! {
                user => e.user, display_name => e.display_name, code => e.code.expose(),
                valid_until => e.valid_until, state => e.state, mac => e.mac, registered_at => e.registered_at,
            }
        })
        .collect();
    let total = r.pending + r.registered + r.expired;
    page(
        "rollout.html",
        with(a.ctx(Some(&d), "rollouts"), context! { r, entries, total }),
    )
}

// ---------------------------------------------------------------------------------------
// Audit log

async fn audit(
    State(st): State<AppState>,
    a: Signed,
    Path(name): Path<String>,
    Query(q): Query<After>,
) -> PageResult {
    let d = a.domain(&st, &name).await?;
    let entries = st.store.list_audit(Some(d.id), q.page(50)?).await?;
    let rows: Vec<_> = entries
        .items
        .iter()
        .map(|e| {
            let change = |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string()).unwrap_or_default();
            context! { at => e.at, actor => e.actor, action => e.action, target => e.target, before => change(&e.before), after => change(&e.after) }
        })
        .collect();
    page(
        "audit.html",
        with(
            a.ctx(Some(&d), "audit"),
            context! { entries => rows, next => entries.next },
        ),
    )
}

// ---------------------------------------------------------------------------------------
// Update jobs

async fn jobs(State(st): State<AppState>, a: Signed, Path(name): Path<String>) -> PageResult {
    let d = a.domain(&st, &name).await?;
    let list: Vec<_> = st
        .store
        .list_jobs(d.id)
        .await?
        .into_iter()
        .rev()
        .map(|(job, progress)| {
            let what = match &job.payload {
                provisor_domain::job::Payload::Software { version, .. } => {
                    format!("firmware {version}")
                }
                provisor_domain::job::Payload::Config { config_type, .. } => {
                    format!("{config_type} settings")
                }
            };
            let total = progress.pending + progress.offered + progress.applied + progress.failed;
            context! { job, progress, what, total }
        })
        .collect();
    let categories = category_names(&st, d.id).await?;
    let firmware: Vec<_> = st
        .store
        .list_firmware()
        .await?
        .into_iter()
        .map(|f| f.name)
        .collect();
    page(
        "jobs.html",
        with(
            a.ctx(Some(&d), "jobs"),
            context! { jobs => list, categories, firmware },
        ),
    )
}

#[derive(Deserialize)]
struct JobForm {
    kind: String,
    category: Option<String>,
    #[serde(default)]
    models: String,
    firmware: Option<String>,
    url: Option<String>,
    version: Option<String>,
    config_type: Option<String>,
    /// `key=value`, one per line.
    #[serde(default)]
    params: String,
    #[serde(default)]
    percent: String,
}

async fn create_job(
    State(st): State<AppState>,
    a: Signed,
    Path(name): Path<String>,
    body: Bytes,
) -> PageResult {
    let d = a.domain(&st, &name).await?;
    let f: JobForm = a.form(&body)?;
    let back = format!("{}/jobs", domain_path(&d));
    let fail = |e: PageError| e.back(back.clone());
    let percent: u8 = match f.percent.trim() {
        "" => 100,
        p => p
            .parse()
            .map_err(|_| fail(PageError::bad("percent: a number from 1 to 100")))?,
    };
    let software = f.kind == "software";
    let config_type = filled(&f.config_type).filter(|_| !software);
    let params = provisor_domain::job::params_of(
        config_type,
        f.params.lines().map(str::trim).filter(|l| !l.is_empty()),
    )
    .map_err(|e| fail(e.into()))?;
    let models: Vec<&str> = f
        .models
        .split([',', ' '])
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .collect();
    let new: provisor_domain::job::NewJob = serde_json::from_value(json!({
        "kind": f.kind, "category": filled(&f.category), "models": models,
        "firmware": filled(&f.firmware).filter(|_| software), "url": filled(&f.url).filter(|_| software),
        "version": filled(&f.version).filter(|_| software),
        "config_type": config_type, "params": params, "percent": percent,
    }))
    .map_err(|e| fail(PageError::bad(e.to_string())))?;
    let spec = new.validate().map_err(|e| fail(e.into()))?;
    st.store
        .create_job(a.actor(), d.id, &spec)
        .await
        .map_err(|e| fail(e.into()))?;
    Ok(see(&back))
}

#[derive(Deserialize)]
struct JobChange {
    /// `active` (resume), `paused` or `cancelled`.
    state: String,
}

async fn change_job(
    State(st): State<AppState>,
    a: Signed,
    Path((name, id)): Path<(String, i64)>,
    body: Bytes,
) -> PageResult {
    let d = a.domain(&st, &name).await?;
    let f: JobChange = a.form(&body)?;
    let back = format!("{}/jobs", domain_path(&d));
    let patch: provisor_domain::job::JobPatch = serde_json::from_value(json!({ "state": f.state }))
        .map_err(|e| PageError::bad(e.to_string()).back(&back))?;
    st.store
        .update_job(a.actor(), d.id, id, &patch.validate()?)
        .await
        .map_err(|e| PageError::from(e).back(&back))?;
    Ok(see(&back))
}

// ---------------------------------------------------------------------------------------
// Webhooks

async fn webhooks(State(st): State<AppState>, a: Signed, Path(name): Path<String>) -> PageResult {
    let d = a.domain(&st, &name).await?;
    webhooks_page(&st, &a, &d, None).await
}

/// The webhooks with their latest deliveries; after one is added, its secret (once).
async fn webhooks_page(
    st: &AppState,
    a: &Signed,
    d: &Domain,
    created: Option<crate::api::webhooks::CreatedWebhook>,
) -> PageResult {
    let mut hooks = Vec::new();
    for w in st.store.list_webhooks(d.id).await? {
        let deliveries = st.store.deliveries(d.id, w.id, 20).await?;
        hooks.push(context! { w, deliveries });
    }
    let created = created.map(|c| {
        context! { url => c.webhook.url, secret => c.secret.expose().to_owned() }
    });
    page(
        "webhooks.html",
        with(a.ctx(Some(d), "webhooks"), context! { hooks, created }),
    )
}

#[derive(Deserialize)]
struct WebhookForm {
    url: String,
    secret: Option<String>,
}

async fn create_webhook(
    State(st): State<AppState>,
    a: Signed,
    Path(name): Path<String>,
    body: Bytes,
) -> PageResult {
    let d = a.domain(&st, &name).await?;
    let f: WebhookForm = a.form(&body)?;
    let back = format!("{}/webhooks", domain_path(&d));
    let new = crate::api::webhooks::NewWebhook {
        url: f.url.trim().to_owned(),
        secret: filled(&f.secret).map(str::to_owned),
    };
    let created = crate::api::webhooks::add(&st, a.actor(), d.id, new)
        .await
        .map_err(|e| PageError::from(e).back(&back))?;
    webhooks_page(&st, &a, &d, Some(created)).await
}

async fn remove_webhook(
    State(st): State<AppState>,
    a: Signed,
    Path((name, id)): Path<(String, i64)>,
    body: Bytes,
) -> PageResult {
    let d = a.domain(&st, &name).await?;
    let _: super::CsrfField = a.form(&body)?;
    let back = format!("{}/webhooks", domain_path(&d));
    st.store
        .delete_webhook(a.actor(), d.id, id)
        .await
        .map_err(|e| PageError::from(e).back(&back))?;
    Ok(see(&back))
}
