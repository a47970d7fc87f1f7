//! Databases for tests: a fresh, empty PostgreSQL database per test.
//!
//! Tests read `PROVISOR_TEST_DATABASE_URL` (default: the local trust-auth server these
//! machines run). If PostgreSQL does not answer, a test is skipped with a note, except
//! with `CI=true`, where it fails: CI never silently skips a backend.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{Connection, Executor, PgConnection};

pub const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The URL of a new database created for the calling test, or `None` to skip it.
pub async fn fresh_postgres() -> Option<String> {
    let base = std::env::var("PROVISOR_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_TEST_DATABASE_URL.to_owned());
    let mut conn = match PgConnection::connect(&base).await {
        Ok(conn) => conn,
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("PostgreSQL at {base} is not reachable ({e}); CI must test both backends");
            }
            eprintln!("skipping a PostgreSQL test: {base} is not reachable ({e})");
            return None;
        }
    };
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let name = format!("provisor_test_{}_{}_{}", std::process::id(), nanos, COUNTER.fetch_add(1, Ordering::Relaxed));
    conn.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("CREATE DATABASE for a test");
    let _ = conn.close().await;
    let (head, query) = match base.split_once('?') {
        Some((h, q)) => (h, format!("?{q}")),
        None => (base.as_str(), String::new()),
    };
    let server = head.rsplit_once('/').filter(|(s, _)| s.ends_with(|c: char| c != '/')).map_or(head, |(s, _)| s);
    Some(format!("{server}/{name}{query}"))
}
