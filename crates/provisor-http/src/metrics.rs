//! Prometheus metrics: requests by route and status, latency per route, database pool.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    state: &'static str,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    pool: Family<PoolLabels, Gauge>,
}

const LATENCY_BUCKETS: [f64; 14] = [
    0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("provisor");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(LATENCY_BUCKETS)
        });
        let pool = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request",
            latency.clone(),
        );
        registry.register(
            "db_pool_connections",
            "Database pool connections by state (idle, in_use, max)",
            pool.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            pool,
        }
    }
}

impl Metrics {
    /// Counts the phone cache's lookups too.
    pub fn count_cache(&mut self, lookups: crate::phone::cache::Lookups) {
        self.registry.register(
            "phone_cache_lookups",
            "Phone cache lookups (devices, files) by result",
            lookups,
        );
    }

    /// The text exposition, with the pool gauges read now.
    pub fn render(&self, stats: provisor_store::PoolStats) -> String {
        let set = |state, v: u32| {
            self.pool
                .get_or_create(&PoolLabels { state })
                .set(i64::from(v))
        };
        set("idle", stats.idle);
        set("in_use", stats.size.saturating_sub(stats.idle));
        set("max", stats.max);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Middleware counting and timing every request under its route pattern (never the raw
/// path, so scanners cannot blow up the label set).
pub async fn track(
    State(state): State<AppState>,
    matched: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    // Only standard methods become label values; anything else a client invents is "other".
    let method = match *request.method() {
        Method::GET
        | Method::HEAD
        | Method::POST
        | Method::PUT
        | Method::PATCH
        | Method::DELETE
        | Method::OPTIONS => request.method().as_str(),
        _ => "other",
    }
    .to_owned();
    let route = matched.map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let response = next.run(request).await;
    let m = &state.metrics;
    m.latency
        .get_or_create(&RouteLabels {
            method: method.clone(),
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    m.requests
        .get_or_create(&RequestLabels {
            method,
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}
