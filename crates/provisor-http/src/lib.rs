//! Provisor's HTTP face: the admin REST API (with its OpenAPI document), health and
//! metrics endpoints, and the middleware around them (tracing, metrics, body limits).
//!
//! Handlers parse input into domain types, check who may do what (`auth`), call the store
//! and map errors (`error`); they hold no SQL and no business rules. Later routers (phones,
//! softphones, console, innovaphone) are merged in `app`.
#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod console;
pub mod error;
pub mod extract;
pub mod firmware;
pub mod innovaphone;
pub mod limit;
pub mod metrics;
pub mod net;
mod ops;
pub mod phone;
pub mod qr;
pub mod softphone;
pub mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Request;
use provisor_store::Store;
use tower_http::trace::TraceLayer;

pub use metrics::Metrics;
pub use phone::{PhoneOptions, Phones};

/// Largest JSON body the API accepts.
pub const MAX_JSON_BODY: usize = 1024 * 1024;
/// Largest CSV import.
pub const MAX_IMPORT_BODY: usize = 64 * 1024 * 1024;

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub phones: Arc<Phones>,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, phones: Phones) -> Self {
        let mut metrics = Metrics::default();
        metrics.count_cache(phones.cache().lookups().clone());
        Self {
            store,
            metrics: Arc::new(metrics),
            phones: Arc::new(phones),
        }
    }
}

/// `value` percent-encoded for a URL component: all but RFC 3986's unreserved characters.
pub fn url_component(value: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    utf8_percent_encode(value, COMPONENT).to_string()
}

/// The whole application router.
pub fn app(state: AppState) -> Router {
    let base_path = state.phones.options().base_path.clone();
    let innovaphone_path = state.phones.options().innovaphone_path.clone();
    let noting_writes =
        || axum::middleware::from_fn_with_state(state.clone(), phone::cache::note_writes);
    Router::new()
        .merge(api::router().layer(noting_writes()))
        .merge(innovaphone::router(&innovaphone_path))
        .merge(
            phone::router(&base_path).layer(axum::middleware::from_fn_with_state(
                state.clone(),
                phone::admit,
            )),
        )
        .merge(softphone::router())
        .merge(console::router().layer(noting_writes()))
        .merge(ops::router())
        .fallback(|| async { error::ApiError::NotFound("route") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(
            TraceLayer::new_for_http().make_span_with(move |request: &Request<_>| {
                // The path only: query strings may carry credentials (softphone logins).
                // A phone's token is a credential: it is replaced in the logged path.
                tracing::info_span!(
                    "request",
                    method = %request.method(),
                    path = %phone::loggable_path(request.uri().path(), &base_path),
                    domain = tracing::field::Empty,
                )
            }),
        )
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        // Outermost: everything after sees the client a trusted balancer names.
        .layer(axum::middleware::from_fn_with_state(
            std::sync::Arc::new(state.phones.options().trusted_proxies.clone()),
            net::forwarded,
        ))
        .with_state(state)
}
