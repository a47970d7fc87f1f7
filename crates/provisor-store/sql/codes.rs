//! Provisioning codes and the event log.

use async_trait::async_trait;
use provisor_domain::code::{self, IssuedCode, Redemption};
use provisor_domain::model::*;
use provisor_store::{CodeStore, EventStore, Redeemed, Result, StoreError};
use serde_json::json;
use sqlx::types::Json;

use super::directory::{CATEGORY, USER, id_of};
use super::phones::policy_of;
use super::{Conn, SqlStore, audit, now, ts};

/// Writes an event in the caller's transaction.
pub(super) async fn event(
    c: &mut Conn,
    d: DomainId,
    kind: &str,
    payload: serde_json::Value,
) -> Result<()> {
    sqlx::query("INSERT INTO events (domain_id, kind, at, payload) VALUES ($1, $2, $3, $4)")
        .bind(d.0)
        .bind(kind)
        .bind(now())
        .bind(Json(payload))
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// How many times a fresh code is drawn again when it collides with a live one (at 10^12
/// values, practically never).
const DRAWS: usize = 5;

#[derive(sqlx::FromRow)]
struct Claimed {
    id: i64,
    domain_id: i64,
    category_id: Option<i64>,
    user_id: i64,
}

#[async_trait]
impl CodeStore for SqlStore {
    async fn create_code(
        &self,
        actor: &Actor,
        d: DomainId,
        category: Option<&str>,
        user: &str,
    ) -> Result<IssuedCode> {
        let mut tx = self.write().await?;
        let category_id = match category {
            Some(c) => Some(id_of(&mut tx, d, "category", &CATEGORY, c).await?),
            None => None,
        };
        let user_id = id_of(&mut tx, d, "user", &USER, user).await?;
        let policy = policy_of(&mut tx, d).await?;
        let created = now();
        let valid_until = created + i64::from(policy.code_seconds) * 1000;
        for _ in 0..DRAWS {
            let code = code::generate();
            let inserted = sqlx::query(
                "INSERT INTO codes (domain_id, category_id, user_id, code_hash, created_at, created_by, valid_until) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (code_hash) DO NOTHING",
            )
            .bind(d.0)
            .bind(category_id)
            .bind(user_id)
            .bind(self.cipher.keyed_digest(code.expose()))
            .bind(created)
            .bind(&actor.0)
            .bind(valid_until)
            .execute(&mut *tx)
            .await?;
            if inserted.rows_affected() == 1 {
                audit(
                    &mut tx,
                    actor,
                    "code.create",
                    Some(d),
                    user,
                    None,
                    Some(
                        json!({"user": user, "category": category, "valid_until": ts(valid_until)}),
                    ),
                )
                .await?;
                tx.commit().await?;
                return Ok(IssuedCode {
                    code,
                    valid_until: ts(valid_until),
                    category: category.map(str::to_owned),
                    user: user.to_owned(),
                });
            }
        }
        Err(StoreError::Conflict(
            "no free provisioning code could be drawn; try again".into(),
        ))
    }

    async fn redeem_code(&self, code: &str, r: &Redemption) -> Result<Option<Redeemed>> {
        let Some(code) = code::normalize(code) else {
            return Ok(None);
        };
        let mut tx = self.write().await?;
        let at = now();
        let ip = r.ip.map(|i| i.to_string());
        // Claiming the row is the race: of two redemptions, one updates it, the other
        // finds it used (PostgreSQL re-checks the condition after the first commits).
        let claimed: Option<Claimed> = sqlx::query_as(
            "UPDATE codes SET used_at = $2, code_hash = NULL, mac = $3, ip = $4 \
             WHERE code_hash = $1 AND used_at IS NULL AND valid_until > $2 \
             RETURNING id, domain_id, category_id, user_id",
        )
        .bind(self.cipher.keyed_digest(&code))
        .bind(at)
        .bind(r.mac.to_string())
        .bind(&ip)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(claimed) = claimed else {
            return Ok(None);
        };
        let taken: Option<i64> = sqlx::query_scalar("SELECT id FROM devices WHERE mac = $1")
            .bind(r.mac.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            // Never re-bound; the code stays live for the phone it is meant for.
            return Ok(None);
        }
        let d = DomainId(claimed.domain_id);
        let (domain_name,): (String,) = sqlx::query_as("SELECT name FROM domains WHERE id = $1")
            .bind(d.0)
            .fetch_one(&mut *tx)
            .await?;
        let (user,): (String,) = sqlx::query_as("SELECT username FROM users WHERE id = $1")
            .bind(claimed.user_id)
            .fetch_one(&mut *tx)
            .await?;
        let category: Option<String> = match claimed.category_id {
            Some(id) => Some(
                sqlx::query_scalar("SELECT name FROM categories WHERE id = $1")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?,
            ),
            None => None,
        };
        let lines: Vec<String> =
            sqlx::query_scalar("SELECT sip_user FROM sip_accounts WHERE user_id = $1 ORDER BY id")
                .bind(claimed.user_id)
                .fetch_all(&mut *tx)
                .await?;
        let new = NewDevice {
            mac: r.mac,
            vendor: r.vendor.clone(),
            model: r.model.clone(),
            category: category.clone(),
            user: Some(user.clone()),
            lines,
            settings: Default::default(),
        };
        let actor = Actor(format!("code:{}", claimed.id));
        let device =
            match super::devices::insert_device(&mut tx, &self.cipher, &actor, d, &new).await {
                Ok(device) => device,
                // Another code bound this MAC at the same moment.
                Err(StoreError::Conflict(_)) => return Ok(None),
                Err(e) => return Err(e),
            };
        sqlx::query("UPDATE devices SET firmware = $1 WHERE id = $2")
            .bind(&r.firmware)
            .bind(device.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE codes SET device_id = $1 WHERE id = $2")
            .bind(device.id)
            .bind(claimed.id)
            .execute(&mut *tx)
            .await?;
        event(
            &mut tx,
            d,
            "device.provisioned",
            json!({
                "mac": r.mac, "model": r.model, "firmware": r.firmware, "bootcode": r.bootcode,
                "ip": ip, "reported_ip": r.reported_ip, "at": ts(at), "user": user, "category": category,
                "code_id": claimed.id, "lines": device.lines,
            }),
        )
        .await?;
        let device = super::devices::device_row(&mut tx, d, r.mac).await?;
        tx.commit().await?;
        Ok(Some(Redeemed {
            domain: d,
            domain_name,
            device,
        }))
    }

    async fn sweep_codes(&self) -> Result<u64> {
        let mut tx = self.write().await?;
        let at = now();
        let expired: Vec<(i64, i64, i64, String)> = sqlx::query_as(
            "SELECT c.id, c.domain_id, c.valid_until, u.username FROM codes c \
             JOIN users u ON u.id = c.user_id WHERE c.used_at IS NULL AND c.valid_until <= $1",
        )
        .bind(at)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM codes WHERE used_at IS NULL AND valid_until <= $1")
            .bind(at)
            .execute(&mut *tx)
            .await?;
        for (id, domain, valid_until, user) in &expired {
            event(
                &mut tx,
                DomainId(*domain),
                "code.expired",
                json!({"code_id": id, "user": user, "valid_until": ts(*valid_until)}),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(expired.len() as u64)
    }
}

#[derive(sqlx::FromRow)]
struct EventRow {
    id: i64,
    domain: String,
    kind: String,
    at: i64,
    payload: Json<serde_json::Value>,
}

#[async_trait]
impl EventStore for SqlStore {
    async fn list_events(&self, d: DomainId, after: i64, limit: u32) -> Result<Vec<Event>> {
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT e.id, dm.name AS domain, e.kind, e.at, e.payload FROM events e \
             JOIN domains dm ON dm.id = e.domain_id WHERE e.domain_id = $1 AND e.id > $2 \
             ORDER BY e.id LIMIT $3",
        )
        .bind(d.0)
        .bind(after)
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| Event {
                id: r.id,
                domain: r.domain,
                kind: r.kind,
                at: ts(r.at),
                payload: r.payload.0,
            })
            .collect())
    }
}
