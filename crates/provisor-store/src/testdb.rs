//! Databases for tests: a fresh, empty PostgreSQL database per test.
//!
//! Tests read `PROVISOR_TEST_DATABASE_URL` (default: the local trust-auth server these
//! machines run; the role must be allowed to create databases). If PostgreSQL does not
//! answer, a test is skipped with a note, except with `CI=true`, where it fails: CI never
//! silently skips a backend. `scripts/test` drops the test databases before and after a
//! run; databases left by other runs are dropped here once they are an hour old.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};

pub const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The URL of a new database created for the calling test, or `None` to skip it.
pub async fn fresh_postgres() -> Option<String> {
    let url = std::env::var("PROVISOR_TEST_DATABASE_URL")
        .unwrap_or_else(|_| DEFAULT_TEST_DATABASE_URL.to_owned());
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    fresh_postgres_at(&url, ci).await
}

/// `fresh_postgres` for the server at `url`; `ci` says whether an unreachable server fails.
pub async fn fresh_postgres_at(url: &str, ci: bool) -> Option<String> {
    let options: PgConnectOptions = url
        .parse()
        .unwrap_or_else(|e| panic!("PROVISOR_TEST_DATABASE_URL is not a PostgreSQL URL: {e}"));
    // Host and port only in messages: the URL may hold a password.
    let server = format!("{}:{}", options.get_host(), options.get_port());
    let mut admin = match tokio::time::timeout(
        Duration::from_secs(10),
        PgConnection::connect_with(&options),
    )
    .await
    {
        Ok(Ok(conn)) => conn,
        // The server answered and refused (no such database or role): a setup error, never a skip.
        Ok(Err(sqlx::Error::Database(e))) => {
            panic!("PostgreSQL at {server} refused the test connection: {e}")
        }
        Ok(Err(e)) => return skip_or_fail(ci, &server, &e.to_string()),
        Err(_) => return skip_or_fail(ci, &server, "no answer within 10 s"),
    };
    drop_stale_databases(&mut admin).await;
    // The first 12 hex digits are the creation time, so stale ones can be found.
    let name = format!(
        "provisor_test_{:012x}{:08x}",
        now_ms(),
        rand::thread_rng().r#gen::<u32>()
    );
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("cannot create the test database {name} on {server}: {e}"));
    let _ = admin.close().await;
    Some(options.database(&name).to_url_lossy().to_string())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Best effort: drops a few test databases made more than an hour ago.
async fn drop_stale_databases(admin: &mut PgConnection) {
    let Ok(names) = sqlx::query_scalar::<_, String>(
        "SELECT datname FROM pg_database WHERE datname ~ '^provisor_test_[0-9a-f]{20}$'",
    )
    .fetch_all(&mut *admin)
    .await
    else {
        return;
    };
    let hour_ago = now_ms().saturating_sub(3_600_000);
    let stale = names.iter().filter(|n| {
        u64::from_str_radix(&n["provisor_test_".len()..][..12], 16).is_ok_and(|t| t < hour_ago)
    });
    for name in stale.take(10) {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
            .execute(&mut *admin)
            .await;
    }
}

/// In CI a missing server fails the test; elsewhere the test is skipped, saying so.
fn skip_or_fail<T>(ci: bool, server: &str, why: &str) -> Option<T> {
    if ci {
        panic!(
            "PostgreSQL at {server} is unreachable ({why}); CI must test both backends (set PROVISOR_TEST_DATABASE_URL)"
        );
    }
    eprintln!(
        "skipped: PostgreSQL at {server} is unreachable ({why}); start it or set PROVISOR_TEST_DATABASE_URL"
    );
    None
}
