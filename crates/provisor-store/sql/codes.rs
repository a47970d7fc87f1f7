//! Provisioning codes and the event log.

use async_trait::async_trait;
use std::collections::{HashMap, HashSet};

use provisor_domain::code::{self, CodeState, IssuedCode, Redemption, Rollout, RolloutEntry};
use provisor_domain::model::*;
use provisor_domain::secret::{Cipher, SecretString};
use provisor_domain::{Invalid, Mac};
use provisor_store::{
    CodeStore, EventStore, Page, PageRequest, Redeemed, Result, RolloutStore, StoreError,
};
use serde_json::json;
use sqlx::QueryBuilder;
use sqlx::types::Json;

use super::directory::{CATEGORY, USER, id_of};
use super::phones::policy_of;
use super::{Conn, Db, SqlStore, audit, fetch_limit, now, page, ts, unique};

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

/// Creates the device a phone redeemed (a code or the domain's token) for, with the
/// firmware it reported; `None` if another redemption took its MAC at the same moment.
#[allow(clippy::too_many_arguments)]
async fn provision(
    c: &mut Conn,
    cipher: &Cipher,
    actor: &Actor,
    d: DomainId,
    r: &Redemption,
    category: Option<String>,
    user: Option<String>,
    lines: Vec<String>,
) -> Result<Option<Device>> {
    let new = NewDevice {
        mac: r.mac,
        vendor: r.vendor.clone(),
        model: r.model.clone(),
        category,
        user,
        lines,
        settings: Default::default(),
    };
    let device = match super::devices::insert_device(c, cipher, actor, d, &new).await {
        Ok(device) => device,
        Err(StoreError::Conflict(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    sqlx::query("UPDATE devices SET firmware = $1 WHERE id = $2")
        .bind(&r.firmware)
        .bind(device.id)
        .execute(&mut *c)
        .await?;
    Ok(Some(device))
}

/// How many times a fresh code is drawn again when it collides with a live one (at 10^12
/// values, practically never).
const DRAWS: usize = 5;

#[derive(sqlx::FromRow)]
pub(super) struct Claimed {
    pub(super) id: i64,
    domain_id: i64,
    pub(super) category_id: Option<i64>,
    user_id: i64,
    rollout_id: Option<i64>,
}

/// Claims a live code by its digest for `mac` (only one of domain `within`, if given).
/// Claiming the row is the race: of two redemptions, one updates it, the other finds it
/// used (PostgreSQL re-checks the condition after the first commits).
pub(super) async fn claim(
    c: &mut Conn,
    hash: &str,
    mac: Mac,
    ip: Option<&str>,
    within: Option<DomainId>,
) -> Result<Option<Claimed>> {
    Ok(sqlx::query_as(
        "UPDATE codes SET used_at = $2, code_hash = NULL, mac = $3, ip = $4 \
         WHERE code_hash = $1 AND used_at IS NULL AND valid_until > $2 \
         AND (domain_id = $5 OR $6) \
         RETURNING id, domain_id, category_id, user_id, rollout_id",
    )
    .bind(hash)
    .bind(now())
    .bind(mac.to_string())
    .bind(ip)
    .bind(within.map_or(0, |d| d.0))
    .bind(within.is_none())
    .fetch_optional(&mut *c)
    .await?)
}

/// Records the device a claimed code was used for, and completes its rollout if that was
/// the last pending code.
pub(super) async fn used_by(c: &mut Conn, claimed: &Claimed, device_id: i64) -> Result<()> {
    sqlx::query("UPDATE codes SET device_id = $1 WHERE id = $2")
        .bind(device_id)
        .bind(claimed.id)
        .execute(&mut *c)
        .await?;
    if let Some(rollout) = claimed.rollout_id {
        complete_if_done(c, rollout).await?;
    }
    Ok(())
}

/// Marks a rollout completed (and writes `rollout.completed`) once none of its codes is
/// pending any more.
async fn complete_if_done(c: &mut Conn, rollout: i64) -> Result<()> {
    let at = now();
    let (domain, pending, registered, expired): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT r.domain_id, \
         (SELECT COUNT(*) FROM codes WHERE rollout_id = r.id AND used_at IS NULL AND expired_at IS NULL AND valid_until > $2), \
         (SELECT COUNT(*) FROM codes WHERE rollout_id = r.id AND used_at IS NOT NULL), \
         (SELECT COUNT(*) FROM codes WHERE rollout_id = r.id AND used_at IS NULL AND (expired_at IS NOT NULL OR valid_until <= $2)) \
         FROM rollouts r WHERE r.id = $1 AND r.completed_at IS NULL",
    )
    .bind(rollout)
    .bind(at)
    .fetch_optional(&mut *c)
    .await?
    .unwrap_or((0, 1, 0, 0));
    if pending > 0 {
        return Ok(());
    }
    sqlx::query("UPDATE rollouts SET completed_at = $1 WHERE id = $2")
        .bind(at)
        .bind(rollout)
        .execute(&mut *c)
        .await?;
    event(
        c,
        DomainId(domain),
        "rollout.completed",
        json!({"rollout_id": rollout, "registered": registered, "expired": expired}),
    )
    .await
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
        let hash = self.cipher.keyed_digest(&code);
        let Some(claimed) = claim(&mut tx, &hash, r.mac, ip.as_deref(), r.within).await? else {
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
        let category = super::directory::category_name(&mut tx, claimed.category_id).await?;
        let lines: Vec<String> =
            sqlx::query_scalar("SELECT sip_user FROM sip_accounts WHERE user_id = $1 ORDER BY id")
                .bind(claimed.user_id)
                .fetch_all(&mut *tx)
                .await?;
        let actor = Actor(format!("code:{}", claimed.id));
        let Some(device) = provision(
            &mut tx,
            &self.cipher,
            &actor,
            d,
            r,
            category.clone(),
            Some(user.clone()),
            lines,
        )
        .await?
        else {
            // Another code bound this MAC at the same moment.
            return Ok(None);
        };
        if let Some(join) = &r.sysclient {
            super::innovaphone::insert_sysclient(&mut tx, &self.cipher, d, device.id, join).await?;
        }
        used_by(&mut tx, &claimed, device.id).await?;
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

    async fn set_auto_token(
        &self,
        actor: &Actor,
        d: DomainId,
        token: Option<&SecretString>,
    ) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query("UPDATE domains SET auto_token_hash = $1, auto_token_enc = $2 WHERE id = $3")
            .bind(token.map(|t| self.cipher.keyed_digest(t.expose())))
            .bind(token.map(|t| self.cipher.encrypt(t.expose())))
            .bind(d.0)
            .execute(&mut *tx)
            .await?;
        let what = if token.is_some() { "set" } else { "removed" };
        audit(
            &mut tx,
            actor,
            "domain.auto_token",
            Some(d),
            "auto-provisioning token",
            None,
            Some(json!({"token": what})),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn auto_token(&self, d: DomainId) -> Result<Option<SecretString>> {
        let blob: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT auto_token_enc FROM domains WHERE id = $1")
                .bind(d.0)
                .fetch_optional(&self.pool)
                .await?
                .ok_or(StoreError::NotFound("domain"))?;
        blob.map(|b| Ok(self.cipher.decrypt(&b)?)).transpose()
    }

    async fn auto_provision(
        &self,
        domain: &str,
        token: &str,
        category: &str,
        r: &Redemption,
    ) -> Result<Option<Redeemed>> {
        let mut tx = self.write().await?;
        let found: Option<(i64, String)> =
            sqlx::query_as("SELECT id, name FROM domains WHERE name = $1 AND auto_token_hash = $2")
                .bind(domain.to_ascii_lowercase())
                .bind(self.cipher.keyed_digest(token))
                .fetch_optional(&mut *tx)
                .await?;
        let Some((id, domain_name)) = found else {
            return Ok(None);
        };
        let d = DomainId(id);
        let known: Option<i64> =
            sqlx::query_scalar("SELECT id FROM categories WHERE domain_id = $1 AND name = $2")
                .bind(d.0)
                .bind(category)
                .fetch_optional(&mut *tx)
                .await?;
        let taken: Option<i64> = sqlx::query_scalar("SELECT id FROM devices WHERE mac = $1")
            .bind(r.mac.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        if known.is_none() || taken.is_some() {
            return Ok(None);
        }
        let actor = Actor("auto-provisioning".into());
        let Some(device) = provision(
            &mut tx,
            &self.cipher,
            &actor,
            d,
            r,
            Some(category.to_owned()),
            None,
            Vec::new(),
        )
        .await?
        else {
            return Ok(None);
        };
        event(
            &mut tx,
            d,
            "device.provisioned",
            json!({
                "mac": r.mac, "model": r.model, "firmware": r.firmware, "bootcode": r.bootcode,
                "ip": r.ip.map(|i| i.to_string()), "at": ts(now()), "user": null, "category": category,
                "by": "auto-provisioning", "lines": device.lines,
            }),
        )
        .await?;
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
        let expired: Vec<(i64, i64, i64, String, Option<i64>)> = sqlx::query_as(
            "SELECT c.id, c.domain_id, c.valid_until, u.username, c.rollout_id FROM codes c \
             JOIN users u ON u.id = c.user_id \
             WHERE c.used_at IS NULL AND c.expired_at IS NULL AND c.valid_until <= $1",
        )
        .bind(at)
        .fetch_all(&mut *tx)
        .await?;
        // A rollout's codes stay listed, as expired; others go.
        sqlx::query(
            "DELETE FROM codes WHERE rollout_id IS NULL AND used_at IS NULL AND valid_until <= $1",
        )
        .bind(at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE codes SET expired_at = $1, code_hash = NULL WHERE rollout_id IS NOT NULL \
             AND used_at IS NULL AND expired_at IS NULL AND valid_until <= $1",
        )
        .bind(at)
        .execute(&mut *tx)
        .await?;
        let mut rollouts = std::collections::BTreeSet::new();
        for (id, domain, valid_until, user, rollout) in &expired {
            event(
                &mut tx,
                DomainId(*domain),
                "code.expired",
                json!({"code_id": id, "user": user, "valid_until": ts(*valid_until), "rollout_id": rollout}),
            )
            .await?;
            rollouts.extend(*rollout);
        }
        for rollout in rollouts {
            complete_if_done(&mut tx, rollout).await?;
        }
        tx.commit().await?;
        Ok(expired.len() as u64)
    }
}

/// Codes of one rollout inserted per statement.
const ROLLOUT_CHUNK: usize = 500;

#[derive(sqlx::FromRow)]
struct RolloutRow {
    id: i64,
    category: Option<String>,
    phone: String,
    created_at: i64,
    created_by: String,
    valid_until: i64,
    completed_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct EntryRow {
    username: String,
    display_name: String,
    code_enc: Option<Vec<u8>>,
    valid_until: i64,
    used_at: Option<i64>,
    expired_at: Option<i64>,
    mac: Option<String>,
}

#[async_trait]
impl RolloutStore for SqlStore {
    async fn create_rollout(
        &self,
        actor: &Actor,
        d: DomainId,
        category: Option<&str>,
        phone: &str,
        users: &[String],
    ) -> Result<Rollout> {
        if users.is_empty() {
            return Err(Invalid::new("users", "a rollout needs at least one user").into());
        }
        let mut tx = self.write().await?;
        let category_id = match category {
            Some(c) => Some(id_of(&mut tx, d, "category", &CATEGORY, c).await?),
            None => None,
        };
        let known: HashMap<String, i64> = sqlx::query_as::<_, (String, i64)>(
            "SELECT username, id FROM users WHERE domain_id = $1",
        )
        .bind(d.0)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        let mut seen = HashSet::new();
        let mut unknown = Vec::new();
        let mut duplicate = Vec::new();
        for u in users {
            if !known.contains_key(u) {
                unknown.push(u.as_str());
            } else if !seen.insert(u.as_str()) {
                duplicate.push(u.as_str());
            }
        }
        let listed = |names: &[&str]| {
            let mut text = names
                .iter()
                .take(20)
                .copied()
                .collect::<Vec<_>>()
                .join(", ");
            if names.len() > 20 {
                text.push_str(&format!(" and {} more", names.len() - 20));
            }
            text
        };
        if !unknown.is_empty() {
            return Err(
                Invalid::new("users", format!("no such users: {}", listed(&unknown))).into(),
            );
        }
        if !duplicate.is_empty() {
            return Err(
                Invalid::new("users", format!("listed twice: {}", listed(&duplicate))).into(),
            );
        }
        let policy = policy_of(&mut tx, d).await?;
        let created = now();
        let valid_until = created + i64::from(policy.rollout_seconds) * 1000;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO rollouts (domain_id, category_id, phone, created_at, created_by, valid_until) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(d.0)
        .bind(category_id)
        .bind(phone)
        .bind(created)
        .bind(&actor.0)
        .bind(valid_until)
        .fetch_one(&mut *tx)
        .await?;
        for chunk in users.chunks(ROLLOUT_CHUNK) {
            let mut q = QueryBuilder::<Db>::new(
                "INSERT INTO codes (domain_id, category_id, user_id, code_hash, code_enc, created_at, created_by, valid_until, rollout_id) ",
            );
            q.push_values(chunk, |mut row, user| {
                let code = code::generate();
                row.push_bind(d.0)
                    .push_bind(category_id)
                    .push_bind(known[user])
                    .push_bind(self.cipher.keyed_digest(code.expose()))
                    .push_bind(self.cipher.encrypt(code.expose()))
                    .push_bind(created)
                    .push_bind(&actor.0)
                    .push_bind(valid_until)
                    .push_bind(id);
            });
            q.build()
                .execute(&mut *tx)
                .await
                .map_err(unique("two codes came out alike; create the rollout again"))?;
        }
        audit(
            &mut tx,
            actor,
            "rollout.create",
            Some(d),
            &id.to_string(),
            None,
            Some(json!({"category": category, "phone": phone, "users": users.len(), "valid_until": ts(valid_until)})),
        )
        .await?;
        let (rollout, _) = rollout_of(&mut tx, &self.cipher, d, id, false).await?;
        tx.commit().await?;
        Ok(rollout)
    }

    async fn rollout(&self, d: DomainId, id: i64) -> Result<(Rollout, Vec<RolloutEntry>)> {
        let mut c = self.pool.acquire().await?;
        rollout_of(&mut c, &self.cipher, d, id, true).await
    }

    async fn list_rollouts(&self, d: DomainId, req: PageRequest) -> Result<Page<Rollout>> {
        let mut c = self.pool.acquire().await?;
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM rollouts WHERE domain_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(d.0)
        .bind(req.after.unwrap_or(i64::MAX))
        .bind(fetch_limit(req))
        .fetch_all(&mut *c)
        .await?;
        let mut rollouts = Vec::with_capacity(ids.len());
        for id in ids {
            rollouts.push(rollout_of(&mut c, &self.cipher, d, id, false).await?.0);
        }
        Ok(page(rollouts, req, |r| r.id))
    }
}

/// The rollout with its counts, and (if `entries`) every user's code and state.
async fn rollout_of(
    c: &mut Conn,
    cipher: &Cipher,
    d: DomainId,
    id: i64,
    entries: bool,
) -> Result<(Rollout, Vec<RolloutEntry>)> {
    let row: RolloutRow = sqlx::query_as(
        "SELECT r.id, c.name AS category, r.phone, r.created_at, r.created_by, r.valid_until, r.completed_at \
         FROM rollouts r LEFT JOIN categories c ON c.id = r.category_id WHERE r.domain_id = $1 AND r.id = $2",
    )
    .bind(d.0)
    .bind(id)
    .fetch_optional(&mut *c)
    .await?
    .ok_or(StoreError::NotFound("rollout"))?;
    let at = now();
    let state = |used: Option<i64>, expired: Option<i64>, until: i64| match (used, expired) {
        (Some(_), _) => CodeState::Registered,
        (None, Some(_)) => CodeState::Expired,
        (None, None) if until <= at => CodeState::Expired,
        _ => CodeState::Pending,
    };
    let (pending, registered, expired): (i64, i64, i64) = sqlx::query_as(
        "SELECT \
         COUNT(CASE WHEN used_at IS NULL AND expired_at IS NULL AND valid_until > $2 THEN 1 END), \
         COUNT(CASE WHEN used_at IS NOT NULL THEN 1 END), \
         COUNT(CASE WHEN used_at IS NULL AND (expired_at IS NOT NULL OR valid_until <= $2) THEN 1 END) \
         FROM codes WHERE rollout_id = $1",
    )
    .bind(id)
    .bind(at)
    .fetch_one(&mut *c)
    .await?;
    let rollout = Rollout {
        id: row.id,
        category: row.category,
        phone: row.phone,
        created_at: ts(row.created_at),
        created_by: row.created_by,
        valid_until: ts(row.valid_until),
        completed_at: row.completed_at.map(ts),
        pending: pending.max(0) as u64,
        registered: registered.max(0) as u64,
        expired: expired.max(0) as u64,
    };
    if !entries {
        return Ok((rollout, Vec::new()));
    }
    let rows: Vec<EntryRow> = sqlx::query_as(
        "SELECT u.username, u.display_name, c.code_enc, c.valid_until, c.used_at, c.expired_at, c.mac \
         FROM codes c JOIN users u ON u.id = c.user_id WHERE c.rollout_id = $1 ORDER BY c.id",
    )
    .bind(id)
    .fetch_all(&mut *c)
    .await?;
    let entries = rows
        .into_iter()
        .map(|r| {
            Ok(RolloutEntry {
                code: match &r.code_enc {
                    Some(blob) => cipher.decrypt(blob)?,
                    None => SecretString::new(""),
                },
                state: state(r.used_at, r.expired_at, r.valid_until),
                mac: r.mac.as_deref().map(Mac::parse).transpose()?,
                registered_at: r.used_at.map(ts),
                valid_until: ts(r.valid_until),
                user: r.username,
                display_name: r.display_name,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((rollout, entries))
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
