//! Provisor's PostgreSQL store, for installations that outgrow one machine.
//!
//! Owns the PostgreSQL migrations and connection settings; the queries are the shared ones
//! in `provisor-store/sql`. Migrations take sqlx's advisory lock, so nodes starting together
//! apply each migration once.
#![forbid(unsafe_code)]

use std::time::Duration;

use provisor_domain::secret::Cipher;
use provisor_store::{Changes, Result};
use sqlx::postgres::{PgListener, PgPoolOptions};
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

/// The channel migration 0015's triggers notify at each commit that changes what phones'
/// files are made from.
const CHANGES_CHANNEL: &str = "provisor_changes";

/// Listens on `CHANGES_CHANNEL` on a connection of its own. Once it listens, everything
/// read before is out of date (changes may have gone unheard); when the connection drops,
/// `changes` has no generation until it listens again (tried every second).
async fn follow_changes(pool: &Pool<Db>, changes: &Changes) {
    let mut lost = false;
    loop {
        match listen(pool).await {
            Ok(mut listener) => {
                if lost {
                    tracing::info!("change notifications heard again: cached files flushed");
                }
                changes.hearing(true);
                // `None`: the connection was lost (the listener would reconnect, but what
                // was sent meanwhile is gone, so this starts over and flushes).
                while let Ok(Some(_)) = listener.try_recv().await {
                    changes.changed();
                }
                tracing::warn!("change notifications lost: nothing is cached until they are back");
                changes.hearing(false);
                lost = true;
            }
            Err(e) => {
                if !lost {
                    tracing::warn!(error = %e, "cannot listen for change notifications: nothing is cached until it can");
                }
                changes.hearing(false);
                lost = true;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn listen(pool: &Pool<Db>) -> sqlx::Result<PgListener> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANGES_CHANNEL).await?;
    Ok(listener)
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
