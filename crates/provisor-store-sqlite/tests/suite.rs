//! The shared store suite against a real SQLite file, a fresh one per test.

use std::sync::Arc;

use provisor_domain::secret::Cipher;
use provisor_store::Store;

async fn make() -> Option<Arc<dyn Store>> {
    // Under the target directory, so leftovers go with `cargo clean`.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a temporary directory");
    let cipher = Cipher::from_text(&Cipher::generate_key_text()).expect("a fresh key");
    let store = provisor_store_sqlite::open(&dir.path().join("provisor.db"), cipher, 8)
        .await
        .expect("the SQLite store opens");
    // The database must outlive this function; the test process ends soon after.
    std::mem::forget(dir);
    Some(Arc::new(store))
}

provisor_store::store_suite!(make);
