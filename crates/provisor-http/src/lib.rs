//! Provisor's HTTP face: the admin REST API (with its OpenAPI document), health and
//! metrics endpoints, and the middleware around them (tracing, metrics, body limits).
//!
//! Handlers parse input into domain types, check who may do what (`auth`), call the store
//! and map errors (`error`); they hold no SQL and no business rules. Later routers (phones,
//! softphones, console, innovaphone) are merged in `app`.
#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod error;
pub mod extract;
pub mod metrics;
mod ops;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Request;
use provisor_store::Store;
use tower_http::trace::TraceLayer;

pub use metrics::Metrics;

/// Largest JSON body the API accepts.
pub const MAX_JSON_BODY: usize = 1024 * 1024;
/// Largest CSV import.
pub const MAX_IMPORT_BODY: usize = 64 * 1024 * 1024;

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            metrics: Arc::new(Metrics::default()),
        }
    }
}

/// The whole application router.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(api::router())
        .merge(ops::router())
        .fallback(|| async { error::ApiError::NotFound("route") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                // The path only: query strings may carry credentials (softphone logins).
                tracing::info_span!(
                    "request",
                    method = %request.method(),
                    path = %request.uri().path(),
                    domain = tracing::field::Empty,
                )
            }),
        )
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .with_state(state)
}
