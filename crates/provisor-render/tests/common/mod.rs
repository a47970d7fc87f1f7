//! What the sandbox review tests share.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use provisor_render::{Context, Renderer, TemplateProblem, Vendors};

pub fn renderer() -> Renderer {
    Renderer::new(Vendors::builtin().unwrap()).unwrap()
}

pub fn ctx() -> Context {
    Context::sample("yealink", "T54W", 3)
}

/// Waits until every stored-template render thread of `r` has ended, at most `limit`.
/// Whether they all ended.
pub fn threads_end(r: &Renderer, limit: Duration) -> bool {
    let since = Instant::now();
    while r.stored_threads() > 0 {
        if since.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Refused (by a cap) or given up at the deadline: either way its thread ends soon.
pub fn refused_or_given_up(p: &TemplateProblem) {
    assert!(
        ["longer than", "limit", "at most", "larger than", "fuel"]
            .iter()
            .any(|w| p.message.contains(w)),
        "{p}"
    );
}

/// A settings layer as given, without `settings::layer`'s checks: the attack tests build
/// contexts beyond what the store takes, to test the render's own limits.
pub fn raw_layer(value: serde_json::Value) -> provisor_domain::settings::Settings {
    match value {
        serde_json::Value::Object(map) => map,
        other => panic!("a layer is an object, not {other}"),
    }
}
