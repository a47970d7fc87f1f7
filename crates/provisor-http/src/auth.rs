//! Who is asking, and which domain they may act in.
//!
//! `Principal` authenticates a bearer token (401 if missing, unknown or revoked).
//! `InDomain` additionally resolves the `{domain}` of the route and refuses a domain admin
//! any domain but their own with the same 404 a missing domain gets, so a domain admin
//! cannot even learn which other domains exist. Handlers that take an `InDomain` pass its
//! `DomainId` to the store, which scopes every statement by it.

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use provisor_domain::model::{Actor, Domain, DomainId, Role};
use provisor_domain::token;

use crate::AppState;
use crate::error::{ApiError, ApiResult};

#[derive(Clone, Debug)]
pub struct Principal {
    pub actor: Actor,
    pub role: Role,
    /// The one domain of a domain admin; `None` for an operator.
    pub domain: Option<DomainId>,
}

impl Principal {
    pub fn require_operator(&self) -> ApiResult<()> {
        match self.role {
            Role::Operator => Ok(()),
            _ => Err(ApiError::forbidden("this needs an operator token")),
        }
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        if let Some(p) = parts.extensions.get::<Principal>() {
            return Ok(p.clone());
        }
        let presented = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .ok_or(ApiError::Unauthorized)?;
        let grant = state
            .store
            .token_by_hash(&token::digest(presented))
            .await?
            .ok_or(ApiError::Unauthorized)?;
        let principal = Principal {
            actor: Actor(
                format!("token:{} {}", grant.token.id, grant.token.name)
                    .trim_end()
                    .to_owned(),
            ),
            role: grant.token.role,
            domain: grant.domain,
        };
        parts.extensions.insert(principal.clone());
        Ok(principal)
    }
}

/// An authenticated caller and the domain of the route, which they may act in.
pub struct InDomain {
    pub principal: Principal,
    pub domain: Domain,
}

impl InDomain {
    pub fn id(&self) -> DomainId {
        self.domain.id
    }
    pub fn actor(&self) -> &Actor {
        &self.principal.actor
    }
}

impl FromRequestParts<AppState> for InDomain {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let principal = Principal::from_request_parts(parts, state).await?;
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let name = params
            .iter()
            .find(|(k, _)| *k == "domain")
            .map(|(_, v)| v.to_ascii_lowercase())
            .ok_or_else(|| {
                ApiError::Internal("InDomain used on a route without {domain}".into())
            })?;
        let domain = state.store.domain(&name).await?;
        if principal.domain.is_some_and(|own| own != domain.id) {
            return Err(ApiError::NotFound("domain"));
        }
        tracing::Span::current().record("domain", domain.name.as_str());
        Ok(InDomain { principal, domain })
    }
}

/// A user signed in with their portal login: HTTP Basic with `user@domain` and the portal
/// password. Unknown domains, unknown users, users without a password and wrong passwords
/// all get the same 401 (an unknown user's check costs a hash like a known one's); failures
/// count against the source IP and the domain in the limiter the provisioning codes use,
/// and a locked key gets 429.
pub struct Portal {
    pub domain: Domain,
    pub username: String,
    /// The password the user signed in with (for QR codes that carry it to their app).
    pub password: provisor_domain::secret::SecretString,
}

impl Portal {
    pub fn actor(&self) -> Actor {
        Actor(format!("user:{}@{}", self.username, self.domain.name))
    }
}

/// An argon2id hash of a random password, verified in place of a missing user's.
fn dummy_hash() -> String {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        let random = provisor_domain::token::generate().secret;
        provisor_domain::password::hash(&random).expect("a long random password")
    })
    .clone()
}

/// The user name and password of an `Authorization: Basic` header.
pub fn basic_credentials(headers: &axum::http::HeaderMap) -> Option<(String, String)> {
    use base64::Engine as _;
    let (scheme, encoded) = headers.get(AUTHORIZATION)?.to_str().ok()?.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':')
        .map(|(u, p)| (u.to_owned(), p.to_owned()))
}

/// What a portal login comes to.
pub enum Login {
    Valid(Portal),
    /// The right password of a disabled user.
    Disabled(Portal),
    /// Unknown domain or user, no portal password, or a wrong one: all alike.
    Refused,
    /// Too many failures from this address or for this domain; retry after.
    Locked(std::time::Duration),
}

/// A password check under the failure limits: every key is counted ahead of the (slow)
/// check, all under one lock, so attempts made at the same moment all count however long
/// the check takes, and taken back if the password is right. `lookup` finds the hash to
/// check (and whatever the caller needs); a missing one is checked against a dummy hash,
/// so an unknown name costs what a known one does. `Err(wait)`: a key is locked.
pub async fn limited_check<T>(
    state: &AppState,
    keys: &[(String, crate::limit::Limit)],
    lookup: impl std::future::Future<Output = ApiResult<(Option<String>, T)>>,
    password: &provisor_domain::secret::SecretString,
) -> ApiResult<Result<(bool, T), std::time::Duration>> {
    let limiter = state.phones.limiter();
    let counted = match limiter.attempt(keys).await {
        Ok(c) => c,
        Err(wait) => return Ok(Err(wait)),
    };
    let (hash, found) = lookup.await?;
    let known = hash.is_some();
    let checked = password.clone();
    let matches = tokio::task::spawn_blocking(move || {
        let hash = hash.unwrap_or_else(dummy_hash);
        provisor_domain::password::verify(&checked, &hash)
    })
    .await?;
    let right = known && matches;
    if right {
        for ((key, limit), locking) in keys.iter().zip(counted) {
            limiter.refund(key, *limit, locking).await;
        }
    }
    Ok(Ok((right, found)))
}

/// Checks a portal login (`user@domain`, password) from `ip` under the shared limits; every
/// failure is counted and audited.
pub async fn portal_login(
    state: &AppState,
    ip: &str,
    login: &str,
    password: String,
) -> ApiResult<Login> {
    let Some((username, domain_name)) = login
        .rsplit_once('@')
        .map(|(u, d)| (u.to_owned(), d.to_ascii_lowercase()))
    else {
        return Ok(Login::Refused);
    };
    let limits = state.phones.options().code_limits;
    let keys = [
        (format!("guess-ip:{ip}"), limits.per_ip),
        (format!("login-domain:{domain_name}"), limits.per_domain),
        // Per user too (as many as per address), so guesses at one login from many
        // addresses are limited.
        (
            format!("login-user:{}@{domain_name}", username.to_lowercase()),
            limits.per_ip,
        ),
    ];
    let lookup = async {
        let domain = match state.store.domain(&domain_name).await {
            Ok(d) => d,
            Err(provisor_store::StoreError::NotFound(_)) => return Ok((None, None)),
            Err(e) => return Err(e.into()),
        };
        let user = match state.store.user(domain.id, &username).await {
            Ok(u) => u,
            Err(provisor_store::StoreError::NotFound(_)) => return Ok((None, None)),
            Err(e) => return Err(e.into()),
        };
        let hash = state.store.user_password_hash(domain.id, &username).await?;
        Ok((hash, Some((domain, user))))
    };
    let secret = provisor_domain::secret::SecretString::new(password);
    match limited_check(state, &keys, lookup, &secret).await? {
        Err(wait) => Ok(Login::Locked(wait)),
        Ok((true, Some((domain, user)))) => {
            let portal = Portal {
                domain,
                username,
                password: secret,
            };
            Ok(if user.enabled {
                Login::Valid(portal)
            } else {
                Login::Disabled(portal)
            })
        }
        Ok(_) => {
            state
                .store
                .record_audit(
                    &Actor(format!("portal:{ip}")),
                    "login.refused",
                    login,
                    serde_json::json!({"ip": ip, "login": login}),
                )
                .await?;
            Ok(Login::Refused)
        }
    }
}

/// A console administrator signed in.
pub struct AdminSignIn {
    pub admin: provisor_store::Admin,
    pub domain: Option<DomainId>,
}

/// Checks a console sign-in (administrator name, password) from `ip` under the same limits
/// as portal logins: per address, and per name (as many as per address). `Err(wait)`:
/// locked; `Ok(None)`: refused (unknown name or wrong password alike), and audited.
pub async fn admin_login(
    state: &AppState,
    ip: &str,
    name: &str,
    password: &provisor_domain::secret::SecretString,
) -> ApiResult<Result<Option<AdminSignIn>, std::time::Duration>> {
    let limits = state.phones.options().code_limits;
    let name = name.trim().to_lowercase();
    let keys = [
        (format!("guess-ip:{ip}"), limits.per_ip),
        (format!("admin-login:{name}"), limits.per_ip),
    ];
    let lookup = async {
        Ok(match state.store.admin_login(&name).await? {
            Some(l) => (Some(l.password_hash), Some((l.admin, l.domain))),
            None => (None, None),
        })
    };
    match limited_check(state, &keys, lookup, password).await? {
        Err(wait) => Ok(Err(wait)),
        Ok((true, Some((admin, domain)))) => Ok(Ok(Some(AdminSignIn { admin, domain }))),
        Ok(_) => {
            state
                .store
                .record_audit(
                    &Actor(format!("console:{ip}")),
                    "login.refused",
                    &format!("admin:{name}"),
                    serde_json::json!({"ip": ip, "name": name}),
                )
                .await?;
            Ok(Ok(None))
        }
    }
}

impl FromRequestParts<AppState> for Portal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let ip = parts
            .extensions
            .get::<axum::extract::ConnectInfo<crate::net::Peer>>()
            .map(|c| provisor_domain::phone::canonical_ip(c.0.addr.ip()).to_string())
            .unwrap_or_else(|| "unknown".into());
        let (login, password) = basic_credentials(&parts.headers).ok_or(ApiError::PortalLogin)?;
        match portal_login(state, &ip, &login, password).await? {
            Login::Valid(p) => Ok(p),
            Login::Disabled(_) | Login::Refused => Err(ApiError::PortalLogin),
            Login::Locked(wait) => Err(ApiError::TooManyAttempts(wait)),
        }
    }
}
