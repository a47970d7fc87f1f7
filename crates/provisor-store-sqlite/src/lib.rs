//! Provisor's embedded default store: SQLite in WAL mode, in the data directory.
//!
//! Owns the SQLite migrations and connection settings; the queries are the shared ones
//! in `provisor-store/sql`. Write transactions begin `IMMEDIATE`, so two writers queue on
//! `busy_timeout` instead of failing when a read lock would have to be upgraded.
#![forbid(unsafe_code)]

use std::path::Path;
use std::time::Duration;

use provisor_domain::secret::Cipher;
use provisor_store::{Changes, Result};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Pool, Transaction};

type Db = sqlx::Sqlite;
const BACKEND: &str = "sqlite";
/// Appended to a claim's row selection: rows another node is claiming are passed over
/// (SQLite has one writer at a time and needs nothing).
/// Appended to a read of rows a transaction will change: they are held until it ends
/// (SQLite's write transactions hold the whole database).
const FOR_UPDATE: &str = "";
const SKIP_LOCKED: &str = "";

/// The SQLite migrations; versions match the PostgreSQL ones one for one.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

async fn begin_write(pool: &Pool<Db>) -> sqlx::Result<Transaction<'static, Db>> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

/// How often the change counter is read: changes made outside this process (the CLI)
/// reach phones within this.
const CHANGE_POLL: Duration = Duration::from_millis(500);

/// Reads the change counter (migration 0015) every `CHANGE_POLL`: this process's own writes
/// move `changes` on as they are made, the CLI's when the counter says so.
async fn follow_changes(pool: &Pool<Db>, changes: &Changes) {
    let mut seen = None;
    loop {
        let version = sqlx::query_scalar::<_, i64>("SELECT version FROM changes WHERE id = 1")
            .fetch_one(pool)
            .await;
        match version {
            Ok(v) if seen.is_none() => {
                changes.hearing(true);
                seen = Some(v);
            }
            Ok(v) if seen != Some(v) => {
                changes.changed();
                seen = Some(v);
            }
            Ok(_) => {}
            Err(e) => {
                if seen.take().is_some() {
                    tracing::warn!(error = %e, "the change counter cannot be read: nothing is cached until it can");
                }
                changes.hearing(false);
            }
        }
        tokio::time::sleep(CHANGE_POLL).await;
    }
}

#[path = "../../provisor-store/sql/mod.rs"]
mod sql;

pub use sql::SqlStore as SqliteStore;

/// Opens (creating if missing) the database file and applies pending migrations.
pub async fn open(path: &Path, cipher: Cipher, max_connections: u32) -> Result<SqliteStore> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(max_connections.max(1))
        .connect_with(options)
        .await?;
    MIGRATOR.run(&pool).await?;
    Ok(SqliteStore::new(pool, cipher))
}
