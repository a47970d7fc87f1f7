//! The console's administrators page: who may sign in to the console, as an operator or as
//! one domain's admin. An operator sees and manages everyone; a domain admin their own
//! domain's admins (the API's rules: `api::admins`).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use minijinja::context;
use serde::Deserialize;
use serde_json::json;

use super::admin::{Signed, with};
use super::{PageError, PageResult, filled, page, see};
use crate::AppState;

const ADMINS: &str = "/console/admins";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(ADMINS, get(list).post(add))
        .route("/console/admins/{name}/password", post(password))
        .route("/console/admins/{name}/remove", post(remove))
}

async fn list(State(st): State<AppState>, a: Signed) -> PageResult {
    let admins = st.store.list_admins(a.principal().domain).await?;
    let own = match a.principal().domain {
        Some(d) => Some(st.store.domain_by_id(d).await?.name),
        None => None,
    };
    page(
        "admins.html",
        with(
            a.ctx(None, "admins"),
            context! { admins, own_domain => own, me_name => a.name() },
        ),
    )
}

#[derive(Deserialize)]
struct AdminForm {
    name: String,
    role: String,
    domain: Option<String>,
    password: String,
}

async fn add(State(st): State<AppState>, a: Signed, body: Bytes) -> PageResult {
    let f: AdminForm = a.form(&body)?;
    let new = serde_json::from_value(json!({
        "name": f.name, "role": f.role, "domain": filled(&f.domain), "password": f.password,
    }))
    .map_err(|e| PageError::bad(e.to_string()).back(ADMINS))?;
    crate::api::admins::add(&st, a.principal(), new)
        .await
        .map_err(|e| PageError::from(e).back(ADMINS))?;
    Ok(see(ADMINS))
}

#[derive(Deserialize)]
struct PasswordForm {
    password: String,
}

async fn password(
    State(st): State<AppState>,
    a: Signed,
    Path(name): Path<String>,
    body: Bytes,
) -> PageResult {
    let f: PasswordForm = a.form(&body)?;
    crate::api::admins::new_password(
        &st,
        a.principal(),
        &name,
        provisor_domain::secret::SecretString::new(f.password),
    )
    .await
    .map_err(|e| PageError::from(e).back(ADMINS))?;
    Ok(see(ADMINS))
}

async fn remove(
    State(st): State<AppState>,
    a: Signed,
    Path(name): Path<String>,
    body: Bytes,
) -> PageResult {
    let _: super::CsrfField = a.form(&body)?;
    st.store
        .delete_admin(a.actor(), a.principal().domain, &name.to_lowercase())
        .await
        .map_err(|e| PageError::from(e).back(ADMINS))?;
    Ok(see(ADMINS))
}
