//! Provisor's PostgreSQL store, for installations that outgrow one machine.
//!
//! Owns the PostgreSQL migrations and connection settings; the queries are the shared ones
//! in `provisor-store/sql`. Migrations take sqlx's advisory lock, so nodes starting together
//! apply each migration once.
#![forbid(unsafe_code)]

use std::time::Duration;

use provisor_domain::secret::Cipher;
use provisor_store::Result;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Pool, Transaction};

type Db = sqlx::Postgres;
const BACKEND: &str = "postgres";
/// Appended to a claim's row selection: rows another node is claiming are passed over
/// (SQLite has one writer at a time and needs nothing).
/// Appended to a read of rows a transaction will change: they are held until it ends
/// (SQLite's write transactions hold the whole database).
const FOR_UPDATE: &str = " FOR UPDATE";
const SKIP_LOCKED: &str = " FOR UPDATE SKIP LOCKED";

/// The PostgreSQL migrations; versions match the SQLite ones one for one.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

async fn begin_write(pool: &Pool<Db>) -> sqlx::Result<Transaction<'static, Db>> {
    pool.begin().await
}

#[path = "../../provisor-store/sql/mod.rs"]
mod sql;

pub use sql::SqlStore as PgStore;

/// Connects to `url` and applies pending migrations.
pub async fn open(url: &str, cipher: Cipher, max_connections: u32) -> Result<PgStore> {
    let pool = PgPoolOptions::new()
        .max_connections(max_connections.max(1))
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await?;
    MIGRATOR.run(&pool).await?;
    Ok(PgStore::new(pool, cipher))
}
