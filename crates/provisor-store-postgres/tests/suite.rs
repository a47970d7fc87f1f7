//! The shared store suite against a real PostgreSQL server, in a fresh database per test
//! (see `provisor_store::testdb` for where the server comes from and when tests skip).

use std::sync::Arc;

use provisor_domain::secret::Cipher;
use provisor_store::Store;
use provisor_store::testdb::fresh_postgres;

async fn make() -> Option<Arc<dyn Store>> {
    let url = fresh_postgres().await?;
    let cipher = Cipher::from_text(&Cipher::generate_key_text()).expect("a fresh key");
    let store = provisor_store_postgres::open(&url, cipher, 5)
        .await
        .expect("the PostgreSQL store opens");
    Some(Arc::new(store))
}

provisor_store::store_suite!(make);
