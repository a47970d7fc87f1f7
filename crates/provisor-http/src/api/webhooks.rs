//! A domain's webhooks (its events POSTed in order, signed; see `crate::webhooks`) and
//! their delivery log.

use axum::extract::State;
use axum::http::StatusCode;
use provisor_domain::model::{Delivery, Webhook};
use provisor_domain::secret::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::InDomain;
use crate::error::{ApiResult, Problem};
use crate::extract::{Json, Path};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// `http://` or `https://`.
    pub url: String,
    /// The key of the signature header; a random one if absent.
    pub secret: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedWebhook {
    pub webhook: Webhook,
    /// Shown once.
    #[schema(value_type = String)]
    #[serde(serialize_with = "provisor_domain::secret::serialize_exposed")]
    pub secret: SecretString,
}

fn checked_url(url: &str) -> Result<String, provisor_domain::Invalid> {
    let bad =
        || provisor_domain::Invalid::new("url", "must be an absolute http:// or https:// URL");
    let parsed = reqwest::Url::parse(url).map_err(|_| bad())?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() || url.len() > 2000 {
        return Err(bad());
    }
    Ok(parsed.to_string())
}

/// A webhook that gets the domain's events from now on (earlier ones are in
/// `GET …/events`).
#[utoipa::path(post, path = "/api/v1/domains/{domain}/webhooks", tag = "codes", params(("domain" = String, Path)),
    request_body = NewWebhook,
    responses((status = 201, body = CreatedWebhook), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn create(
    State(st): State<AppState>,
    d: InDomain,
    Json(new): Json<NewWebhook>,
) -> ApiResult<(StatusCode, Json<CreatedWebhook>)> {
    let created = add(&st, d.actor(), d.id(), new).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Adds a webhook to domain `d` (the API's and the console's way).
pub async fn add(
    st: &AppState,
    actor: &provisor_domain::model::Actor,
    d: provisor_domain::model::DomainId,
    new: NewWebhook,
) -> ApiResult<CreatedWebhook> {
    let url = checked_url(&new.url)?;
    let secret = match new.secret {
        Some(s) if s.len() < 16 || s.len() > 256 => {
            return Err(
                provisor_domain::Invalid::new("secret", "must be 16 to 256 characters").into(),
            );
        }
        Some(s) => SecretString::new(s),
        None => provisor_domain::token::generate().secret,
    };
    let webhook = st.store.create_webhook(actor, d, &url, &secret).await?;
    Ok(CreatedWebhook { webhook, secret })
}

#[utoipa::path(get, path = "/api/v1/domains/{domain}/webhooks", tag = "codes", params(("domain" = String, Path)),
    responses((status = 200, body = Vec<Webhook>), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn list(State(st): State<AppState>, d: InDomain) -> ApiResult<Json<Vec<Webhook>>> {
    Ok(Json(st.store.list_webhooks(d.id()).await?))
}

#[utoipa::path(delete, path = "/api/v1/domains/{domain}/webhooks/{id}", tag = "codes", params(("domain" = String, Path), ("id" = i64, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn delete(
    State(st): State<AppState>,
    d: InDomain,
    Path((_, id)): Path<(String, i64)>,
) -> ApiResult<StatusCode> {
    st.store.delete_webhook(d.actor(), d.id(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The webhook's latest delivery attempts, newest first.
#[utoipa::path(get, path = "/api/v1/domains/{domain}/webhooks/{id}/deliveries", tag = "codes", params(("domain" = String, Path), ("id" = i64, Path)),
    responses((status = 200, body = Vec<Delivery>), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn deliveries(
    State(st): State<AppState>,
    d: InDomain,
    Path((_, id)): Path<(String, i64)>,
) -> ApiResult<Json<Vec<Delivery>>> {
    Ok(Json(st.store.deliveries(d.id(), id, 200).await?))
}
