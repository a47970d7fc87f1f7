//! Webhooks: subscribers of a domain's events, their cursors and delivery log.

use async_trait::async_trait;
use provisor_domain::model::*;
use provisor_domain::secret::SecretString;
use provisor_store::{DueWebhook, Result, StoreError, WebhookLease, WebhookStore};
use serde_json::json;

use super::{SKIP_LOCKED, SqlStore, audit, now, ts};

#[derive(sqlx::FromRow)]
struct WebhookRow {
    id: i64,
    url: String,
    created_at: i64,
    created_by: String,
    cursor: i64,
    failures: i32,
    next_attempt_at: i64,
}

impl From<WebhookRow> for Webhook {
    fn from(r: WebhookRow) -> Self {
        Webhook {
            id: r.id,
            url: r.url,
            created_at: ts(r.created_at),
            created_by: r.created_by,
            cursor: r.cursor,
            failures: r.failures.max(0) as u32,
            next_attempt_at: ts(r.next_attempt_at),
        }
    }
}

const COLS: &str = "id, url, created_at, created_by, cursor, failures, next_attempt_at";

#[async_trait]
impl WebhookStore for SqlStore {
    async fn create_webhook(
        &self,
        actor: &Actor,
        d: DomainId,
        url: &str,
        secret: &SecretString,
    ) -> Result<Webhook> {
        let mut tx = self.write().await?;
        let cursor: Option<i64> =
            sqlx::query_scalar("SELECT MAX(id) FROM events WHERE domain_id = $1")
                .bind(d.0)
                .fetch_one(&mut *tx)
                .await?;
        let row: WebhookRow = sqlx::query_as(&format!(
            "INSERT INTO webhooks (domain_id, url, secret_enc, created_at, created_by, cursor) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLS}"
        ))
        .bind(d.0)
        .bind(url)
        .bind(self.cipher.encrypt(secret.expose()))
        .bind(now())
        .bind(&actor.0)
        .bind(cursor.unwrap_or(0))
        .fetch_one(&mut *tx)
        .await?;
        let hook = Webhook::from(row);
        audit(
            &mut tx,
            actor,
            "webhook.create",
            Some(d),
            &hook.id.to_string(),
            None,
            Some(json!({"url": url})),
        )
        .await?;
        tx.commit().await?;
        Ok(hook)
    }

    async fn list_webhooks(&self, d: DomainId) -> Result<Vec<Webhook>> {
        let rows: Vec<WebhookRow> = sqlx::query_as(&format!(
            "SELECT {COLS} FROM webhooks WHERE domain_id = $1 ORDER BY id"
        ))
        .bind(d.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Webhook::from).collect())
    }

    async fn delete_webhook(&self, actor: &Actor, d: DomainId, id: i64) -> Result<()> {
        let mut tx = self.write().await?;
        let url: String = sqlx::query_scalar(
            "DELETE FROM webhooks WHERE domain_id = $1 AND id = $2 RETURNING url",
        )
        .bind(d.0)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound("webhook"))?;
        audit(
            &mut tx,
            actor,
            "webhook.delete",
            Some(d),
            &id.to_string(),
            Some(json!({"url": url})),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn deliveries(&self, d: DomainId, id: i64, limit: u32) -> Result<Vec<Delivery>> {
        let known: Option<i64> =
            sqlx::query_scalar("SELECT id FROM webhooks WHERE domain_id = $1 AND id = $2")
                .bind(d.0)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        known.ok_or(StoreError::NotFound("webhook"))?;
        let rows: Vec<(i64, i64, i32, i64, Option<i32>, String)> = sqlx::query_as(
            "SELECT id, event_id, attempt, at, status, error FROM webhook_deliveries \
             WHERE webhook_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(id)
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, event_id, attempt, at, status, error)| Delivery {
                id,
                event_id,
                attempt: attempt.max(0) as u32,
                at: ts(at),
                status: status.and_then(|s| u16::try_from(s).ok()),
                error,
            })
            .collect())
    }

    async fn claim_webhooks(
        &self,
        node: &str,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<DueWebhook>> {
        let at = now();
        // The lease is checked again on the row the update locks, so of two nodes claiming
        // at once one gets each webhook (PostgreSQL re-reads a row another transaction
        // changed; SQLite has one writer).
        let rows: Vec<(i64, i64, String, Vec<u8>, i64, i32)> = sqlx::query_as(&format!(
            "UPDATE webhooks SET lease_holder = $1, lease_until = $2 \
             WHERE lease_until < $3 AND id IN (SELECT w.id FROM webhooks w \
               WHERE w.next_attempt_at <= $3 AND w.lease_until < $3 \
               AND EXISTS (SELECT 1 FROM events e WHERE e.domain_id = w.domain_id AND e.id > w.cursor) \
               ORDER BY w.next_attempt_at LIMIT $4{SKIP_LOCKED}) \
             RETURNING id, domain_id, url, secret_enc, cursor, failures"
        ))
        .bind(node)
        .bind(at + lease_ms)
        .bind(at)
        .bind(i64::from(limit.max(1)))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, domain, url, secret, cursor, failures)| {
                Ok(DueWebhook {
                    id,
                    domain: DomainId(domain),
                    url,
                    secret: self.cipher.decrypt(&secret)?,
                    cursor,
                    failures: failures.max(0) as u32,
                })
            })
            .collect()
    }

    async fn release_webhook(&self, webhook: i64, node: &str) -> Result<()> {
        sqlx::query(
            "UPDATE webhooks SET lease_holder = NULL, lease_until = 0 \
             WHERE id = $1 AND lease_holder = $2",
        )
        .bind(webhook)
        .bind(node)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn record_delivery(
        &self,
        lease: WebhookLease<'_>,
        event_id: i64,
        status: Option<u16>,
        error: &str,
        retry_at: Option<i64>,
    ) -> Result<bool> {
        let webhook = lease.webhook;
        let mut tx = self.write().await?;
        // Still this node's (the lease extended, the row locked till commit), or not.
        let failures: Option<i32> = sqlx::query_scalar(
            "UPDATE webhooks SET lease_until = $1 WHERE id = $2 AND lease_holder = $3 \
             RETURNING failures",
        )
        .bind(now() + lease.lease_ms)
        .bind(webhook)
        .bind(lease.node)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(failures) = failures else {
            // Deleted meanwhile, or taken over by another node.
            return Ok(false);
        };
        sqlx::query(
            "INSERT INTO webhook_deliveries (webhook_id, event_id, attempt, at, status, error) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(webhook)
        .bind(event_id)
        .bind(failures + 1)
        .bind(now())
        .bind(status.map(i32::from))
        .bind(error)
        .execute(&mut *tx)
        .await?;
        match retry_at {
            None => {
                sqlx::query(
                    "UPDATE webhooks SET cursor = $1, failures = 0, next_attempt_at = 0 \
                     WHERE id = $2 AND cursor < $1",
                )
                .bind(event_id)
                .bind(webhook)
                .execute(&mut *tx)
                .await?;
            }
            Some(at) => {
                sqlx::query(
                    "UPDATE webhooks SET failures = failures + 1, next_attempt_at = $1 WHERE id = $2",
                )
                .bind(at)
                .bind(webhook)
                .execute(&mut *tx)
                .await?;
            }
        }
        // The log keeps the latest 200 attempts per webhook.
        sqlx::query(
            "DELETE FROM webhook_deliveries WHERE webhook_id = $1 AND id NOT IN \
             (SELECT id FROM webhook_deliveries WHERE webhook_id = $1 ORDER BY id DESC LIMIT 200)",
        )
        .bind(webhook)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}
