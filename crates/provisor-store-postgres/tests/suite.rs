//! The shared store suite against a real PostgreSQL server, in a fresh database per test
//! (see `provisor_store::testdb` for where the server comes from and when tests skip).

use std::sync::Arc;

use provisor_domain::secret::Cipher;
use provisor_store::Store;
use provisor_store::testdb::{fresh_postgres, fresh_postgres_at};

async fn make() -> Option<Arc<dyn Store>> {
    let url = fresh_postgres().await?;
    let cipher = Cipher::from_text(&Cipher::generate_key_text()).expect("a fresh key");
    let store = provisor_store_postgres::open(&url, cipher, 5)
        .await
        .expect("the PostgreSQL store opens");
    Some(Arc::new(store))
}

provisor_store::store_suite!(make);

/// Nothing listens on port 1 here: outside CI the PostgreSQL tests skip, saying so.
#[tokio::test]
async fn an_unreachable_server_is_skipped_outside_ci() {
    assert_eq!(
        fresh_postgres_at("postgres://postgres@127.0.0.1:1/test", false).await,
        None
    );
}

/// In CI an unreachable PostgreSQL fails the run: it never silently skips a backend.
#[tokio::test]
#[should_panic(expected = "CI must test both backends")]
async fn an_unreachable_server_fails_in_ci() {
    fresh_postgres_at("postgres://postgres@127.0.0.1:1/test", true).await;
}
