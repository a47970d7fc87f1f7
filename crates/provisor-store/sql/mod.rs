//! The SQL implementation of the store traits, written once and compiled into each backend
//! crate with its concrete types (`#[path]` include). The including crate root provides:
//!
//! - `type Db` — the sqlx database (`sqlx::Sqlite` or `sqlx::Postgres`);
//! - `async fn begin_write(&Pool<Db>) -> sqlx::Result<Transaction<'static, Db>>`;
//! - `const BACKEND: &str`;
//! - `const SKIP_LOCKED: &str`: `FOR UPDATE SKIP LOCKED` where the database has it;
//! - `const FOR_UPDATE: &str`: `FOR UPDATE` where the database has it;
//! - `async fn follow_changes(&Pool<Db>, &Changes)`: how the database tells of changes.
//!
//! Statements use only SQL both backends speak: `$n` parameters, `RETURNING`,
//! `ON CONFLICT`, integer millisecond timestamps, JSON columns through `sqlx::types::Json`.
//! Every write that changes admin data records its audit entry in the same transaction.

mod bulk;
mod codes;
mod console;
mod devices;
mod directory;
mod firmware;
mod innovaphone;
mod installs;
mod jobs;
mod phones;
mod templates;
mod tokens;
mod webhooks;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use provisor_domain::model::{Actor, DomainId};
use provisor_domain::secret::Cipher;
use provisor_store::{BaseStore, Page, PageRequest, PoolStats, Result, StoreError};
use serde::Serialize;
use sqlx::{Pool, Transaction};

use super::{BACKEND, Db, FOR_UPDATE, SKIP_LOCKED, begin_write};

type Conn = <Db as sqlx::Database>::Connection;
type Tx = Transaction<'static, Db>;

/// A store on one connection pool; cheap to share behind an `Arc`.
pub struct SqlStore {
    pool: Pool<Db>,
    cipher: Cipher,
}

impl SqlStore {
    /// Wraps a pool whose migrations have been applied.
    pub fn new(pool: Pool<Db>, cipher: Cipher) -> Self {
        Self { pool, cipher }
    }

    pub fn pool(&self) -> &Pool<Db> {
        &self.pool
    }

    async fn write(&self) -> Result<Tx> {
        Ok(begin_write(&self.pool).await?)
    }
}

fn now() -> i64 {
    Utc::now().timestamp_millis()
}

fn ts(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Maps a unique-constraint violation to a conflict with `message`.
fn unique(message: impl Into<String>) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| {
        if StoreError::is_unique_violation(&e) {
            StoreError::Conflict(message.into())
        } else {
            StoreError::Database(e)
        }
    }
}

/// Maps a foreign-key violation (something still refers to the row) to a conflict.
fn in_use(message: impl Into<String>) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| {
        if StoreError::is_foreign_key_violation(&e) {
            StoreError::Conflict(message.into())
        } else {
            StoreError::Database(e)
        }
    }
}

/// The keyset page: rows were fetched with `LIMIT limit + 1`.
fn page<T>(mut items: Vec<T>, req: PageRequest, id: impl Fn(&T) -> i64) -> Page<T> {
    let more = items.len() > req.limit as usize;
    items.truncate(req.limit as usize);
    let next = if more { items.last().map(id) } else { None };
    Page { items, next }
}

fn fetch_limit(req: PageRequest) -> i64 {
    i64::from(req.limit) + 1
}

fn json(v: &impl Serialize) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// One audit entry, written in the caller's transaction. `before`/`after` are public
/// representations (see `json`), which carry no secrets.
async fn audit(
    tx: &mut Conn,
    actor: &Actor,
    action: &str,
    domain: Option<DomainId>,
    target: &str,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor, action, domain_id, domain_name, target, before, after)
         VALUES ($1, $2, $3, $4, (SELECT name FROM domains WHERE id = $4), $5, $6, $7)",
    )
    .bind(now())
    .bind(&actor.0)
    .bind(action)
    .bind(domain.map(|d| d.0))
    .bind(target)
    .bind(before.map(sqlx::types::Json))
    .bind(after.map(sqlx::types::Json))
    .execute(tx)
    .await?;
    Ok(())
}

#[async_trait]
impl BaseStore for SqlStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    fn pool_stats(&self) -> PoolStats {
        PoolStats {
            size: self.pool.size(),
            idle: self.pool.num_idle() as u32,
            max: self.pool.options().get_max_connections(),
        }
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn meta_get(&self, key: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn meta_init(&self, key: &str, value: &str) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn meta_remove(&self, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM meta WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn with_limits(
        &self,
        keys: &[String],
        change: &mut (dyn for<'r> FnMut(&'r mut [provisor_store::LimitRow]) + Send),
    ) -> Result<()> {
        let mut tx = self.write().await?;
        let at = now();
        // Rows taken in key order, so two nodes counting the same keys cannot deadlock.
        let mut order: Vec<&String> = keys.iter().collect();
        order.sort();
        order.dedup();
        let mut held = std::collections::HashMap::new();
        for key in order {
            sqlx::query(
                "INSERT INTO limits (key, since, failures, locked_until) VALUES ($1, $2, 0, 0) \
                 ON CONFLICT (key) DO NOTHING",
            )
            .bind(key)
            .bind(at)
            .execute(&mut *tx)
            .await?;
            let (since, failures, locked_until): (i64, i32, i64) = sqlx::query_as(&format!(
                "SELECT since, failures, locked_until FROM limits WHERE key = $1{FOR_UPDATE}"
            ))
            .bind(key)
            .fetch_one(&mut *tx)
            .await?;
            held.insert(
                key.clone(),
                provisor_store::LimitRow {
                    key: key.clone(),
                    since,
                    failures: failures.max(0) as u32,
                    locked_until,
                },
            );
        }
        let mut rows: Vec<_> = keys.iter().map(|k| held[k].clone()).collect();
        change(&mut rows);
        // Only what changed is written (a check of a lock changes nothing).
        for r in rows.iter().filter(|r| held.get(&r.key) != Some(*r)) {
            sqlx::query(
                "UPDATE limits SET since = $2, failures = $3, locked_until = $4 WHERE key = $1",
            )
            .bind(&r.key)
            .bind(r.since)
            .bind(r.failures.min(i32::MAX as u32) as i32)
            .bind(r.locked_until)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn prune_limits(&self, before: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM limits WHERE since < $1 AND locked_until < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn take_lease(&self, name: &str, node: &str, lease_ms: i64) -> Result<bool> {
        let at = now();
        let held: Option<String> = sqlx::query_scalar(
            "INSERT INTO leases (name, holder, until) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until \
             WHERE leases.until < $4 OR leases.holder = excluded.holder RETURNING holder",
        )
        .bind(name)
        .bind(node)
        .bind(at + lease_ms)
        .bind(at)
        .fetch_optional(&self.pool)
        .await?;
        Ok(held.is_some())
    }

    async fn follow_changes(&self, changes: std::sync::Arc<provisor_store::Changes>) {
        super::follow_changes(&self.pool, &changes).await
    }
}
