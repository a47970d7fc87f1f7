//! What phones' fetches read and leave behind: devices by token or MAC with their lines'
//! passwords and settings layers, contacts, refusals, uploads; and the admin side of a
//! device's provisioning credentials.

use std::collections::BTreeSet;

use async_trait::async_trait;
use provisor_domain::Mac;
use provisor_domain::model::*;
use provisor_domain::phone::{
    Contact, DeviceSecrets, PhoneDevice, PhoneLine, PhonePolicy, Refusal, new_url_token,
};
use provisor_domain::secret::{Cipher, SecretString};
use provisor_domain::settings::Settings;
use provisor_domain::token::digest;
use provisor_store::{
    DeviceCredentials, MAX_UNASSIGNED_PER_DOMAIN, Page, PageRequest, PhoneStore, REFUSALS_KEPT,
    RefusalEntry, Result, StoreError, UnassignedDevice, UploadEntry,
};
use sqlx::types::Json;

use super::{Conn, SqlStore, audit, fetch_limit, now, page, ts};

const MINUTE_MS: i64 = 60_000;

pub(super) async fn policy_of(c: &mut Conn, d: DomainId) -> Result<PhonePolicy> {
    let policy: Json<PhonePolicy> =
        sqlx::query_scalar("SELECT phone_policy FROM domains WHERE id = $1")
            .bind(d.0)
            .fetch_one(&mut *c)
            .await?;
    Ok(policy.0)
}

/// Gives a newly added device its token and passwords, arms it for the domain's window, and
/// takes its MAC off the unassigned lists, where it would hold a place under the bound.
pub(super) async fn issue_secrets(
    c: &mut Conn,
    cipher: &Cipher,
    d: DomainId,
    device_id: i64,
) -> Result<()> {
    let policy = policy_of(c, d).await?;
    let secrets = DeviceSecrets::generate();
    let armed = (policy.arm_minutes > 0).then(|| now() + i64::from(policy.arm_minutes) * MINUTE_MS);
    sqlx::query(
        "UPDATE devices SET token_hash = $1, token_enc = $2, admin_password_enc = $3, \
         fetch_password_enc = $4, armed_until = $5 WHERE id = $6",
    )
    .bind(digest(secrets.token.expose()))
    .bind(cipher.encrypt(secrets.token.expose()))
    .bind(cipher.encrypt(secrets.admin_password.expose()))
    .bind(cipher.encrypt(secrets.fetch_password.expose()))
    .bind(armed)
    .bind(device_id)
    .execute(&mut *c)
    .await?;
    sqlx::query(
        "DELETE FROM unassigned_devices WHERE mac = (SELECT mac FROM devices WHERE id = $1)",
    )
    .bind(device_id)
    .execute(&mut *c)
    .await?;
    Ok(())
}

const PHONE_SELECT: &str = "SELECT d.id, d.domain_id, d.category_id, dm.name AS domain_name, d.mac, d.vendor, d.model, d.firmware, \
     d.state, dm.phone_policy, dm.settings AS domain_settings, c.settings AS category_settings, \
     u.settings AS user_settings, u.display_name AS owner_display_name, d.settings, d.token_enc, \
     d.admin_password_enc, d.fetch_password_enc, d.armed_until, d.firmware_pin \
     FROM devices d JOIN domains dm ON dm.id = d.domain_id \
     LEFT JOIN categories c ON c.id = d.category_id LEFT JOIN users u ON u.id = d.user_id";

#[derive(sqlx::FromRow)]
struct PhoneRow {
    id: i64,
    domain_id: i64,
    category_id: Option<i64>,
    domain_name: String,
    mac: String,
    vendor: String,
    model: String,
    firmware: String,
    state: String,
    phone_policy: Json<PhonePolicy>,
    domain_settings: Json<Settings>,
    category_settings: Option<Json<Settings>>,
    user_settings: Option<Json<Settings>>,
    owner_display_name: Option<String>,
    settings: Json<Settings>,
    token_enc: Option<Vec<u8>>,
    admin_password_enc: Option<Vec<u8>>,
    fetch_password_enc: Option<Vec<u8>>,
    armed_until: Option<i64>,
    firmware_pin: Option<Json<provisor_domain::job::FirmwarePin>>,
}

#[derive(sqlx::FromRow)]
struct PhoneLineRow {
    position: i32,
    sip_user: String,
    auth_user: String,
    password_enc: Vec<u8>,
    display_name: String,
    registrar: String,
    outbound_proxy: String,
    transport: String,
}

fn open(cipher: &Cipher, blob: Option<Vec<u8>>) -> Result<SecretString> {
    Ok(match blob {
        Some(b) => cipher.decrypt(&b)?,
        None => SecretString::new(""),
    })
}

impl SqlStore {
    /// The phone of `row`, with its lines and stored templates, read on `c`.
    async fn phone(&self, c: &mut Conn, row: Option<PhoneRow>) -> Result<Option<PhoneDevice>> {
        let Some(r) = row else { return Ok(None) };
        let lines: Vec<PhoneLineRow> = sqlx::query_as(
            "SELECT l.position, a.sip_user, a.auth_user, a.password_enc, a.display_name, a.registrar, \
             a.outbound_proxy, a.transport FROM device_lines l JOIN sip_accounts a ON a.id = l.account_id \
             WHERE l.device_id = $1 ORDER BY l.position",
        )
        .bind(r.id)
        .fetch_all(&mut *c)
        .await?;
        let lines = lines
            .into_iter()
            .map(|l| {
                Ok(PhoneLine {
                    position: l.position as u32,
                    sip_user: l.sip_user,
                    auth_user: l.auth_user,
                    password: self.cipher.decrypt(&l.password_enc)?,
                    display_name: l.display_name,
                    registrar: l.registrar,
                    outbound_proxy: l.outbound_proxy,
                    transport: l.transport.parse().unwrap_or_default(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let templates = super::templates::device_templates(c, r.domain_id, r.category_id).await?;
        let mac = Mac::parse(&r.mac)?;
        let rules = super::jobs::rules_for(c, r.domain_id, r.category_id, r.id).await?;
        let jobs = provisor_domain::job::plan(
            &rules,
            r.firmware_pin.as_ref().map(|p| &p.0),
            mac,
            &r.model,
            r.category_id,
        );
        let job_layer = provisor_domain::job::config_layer(&rules, &jobs.jobs);
        Ok(Some(PhoneDevice {
            id: r.id,
            domain: DomainId(r.domain_id),
            domain_name: r.domain_name,
            mac,
            vendor: r.vendor,
            model: r.model,
            firmware: r.firmware,
            state: r.state.parse()?,
            policy: r.phone_policy.0,
            owner_display_name: r.owner_display_name.unwrap_or_default(),
            lines,
            // The config jobs' layer goes on top of the category's.
            layers: vec![
                r.domain_settings.0,
                r.category_settings.map(|s| s.0).unwrap_or_default(),
                job_layer,
                r.user_settings.map(|s| s.0).unwrap_or_default(),
                r.settings.0,
            ],
            token: open(&self.cipher, r.token_enc)?,
            admin_password: open(&self.cipher, r.admin_password_enc)?,
            fetch_password: open(&self.cipher, r.fetch_password_enc)?,
            armed_until: r.armed_until.map(ts),
            templates,
            jobs,
        }))
    }
}

#[derive(sqlx::FromRow)]
struct CredentialRow {
    id: i64,
    token_enc: Option<Vec<u8>>,
    prev_token_until: Option<i64>,
    armed_until: Option<i64>,
    admin_password_enc: Option<Vec<u8>>,
    fetch_password_enc: Option<Vec<u8>>,
}

async fn credential_row(c: &mut Conn, d: DomainId, mac: Mac) -> Result<CredentialRow> {
    sqlx::query_as(
        "SELECT id, token_enc, prev_token_until, armed_until, admin_password_enc, fetch_password_enc \
         FROM devices WHERE domain_id = $1 AND mac = $2",
    )
    .bind(d.0)
    .bind(mac.to_string())
    .fetch_optional(&mut *c)
    .await?
    .ok_or(StoreError::NotFound("device"))
}

async fn device_id(c: &mut Conn, d: DomainId, mac: Mac) -> Result<i64> {
    sqlx::query_scalar("SELECT id FROM devices WHERE domain_id = $1 AND mac = $2")
        .bind(d.0)
        .bind(mac.to_string())
        .fetch_optional(&mut *c)
        .await?
        .ok_or(StoreError::NotFound("device"))
}

#[derive(sqlx::FromRow)]
struct UnassignedRow {
    id: i64,
    mac: String,
    vendor: String,
    model: String,
    firmware: String,
    last_ip: String,
    first_contact: i64,
    last_contact: i64,
}

#[async_trait]
impl PhoneStore for SqlStore {
    async fn phone_by_token(&self, token_hash: &str) -> Result<Option<PhoneDevice>> {
        let mut c = self.pool.acquire().await?;
        let row: Option<PhoneRow> = sqlx::query_as(&format!(
            "{PHONE_SELECT} WHERE d.token_hash = $1 OR (d.prev_token_hash = $1 AND d.prev_token_until > $2)"
        ))
        .bind(token_hash)
        .bind(now())
        .fetch_optional(&mut *c)
        .await?;
        self.phone(&mut c, row).await
    }

    async fn phone_by_mac(&self, mac: Mac) -> Result<Option<PhoneDevice>> {
        let mut c = self.pool.acquire().await?;
        let row: Option<PhoneRow> = sqlx::query_as(&format!("{PHONE_SELECT} WHERE d.mac = $1"))
            .bind(mac.to_string())
            .fetch_optional(&mut *c)
            .await?;
        self.phone(&mut c, row).await
    }

    async fn disarm(&self, device_id: i64) -> Result<bool> {
        let done =
            sqlx::query("UPDATE devices SET armed_until = NULL WHERE id = $1 AND armed_until > $2")
                .bind(device_id)
                .bind(now())
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn record_contacts(&self, contacts: &[Contact]) -> Result<()> {
        if contacts.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        let mut recording: Option<Vec<(i64, PhonePolicy)>> = None;
        for c in contacts {
            let at = c.at.timestamp_millis();
            let ip = c.ip.to_string();
            if let Some(id) = c.device_id {
                sqlx::query(
                    "UPDATE devices SET first_contact = COALESCE(first_contact, $1), last_contact = $1, \
                     last_ip = $2, firmware = CASE WHEN $3 = '' THEN firmware ELSE $3 END, \
                     vendor = CASE WHEN vendor = '' THEN $4 ELSE vendor END, \
                     model = CASE WHEN model = '' THEN $5 ELSE model END \
                     WHERE id = $6",
                )
                .bind(at)
                .bind(&ip)
                .bind(&c.firmware)
                .bind(&c.vendor)
                .bind(&c.model)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                super::jobs::checked_in(&mut tx, id, &c.jobs, &c.firmware, at).await?;
                // Its first configuration: the device came up (`device.registered`).
                let registered: Option<(i64, String, String, String)> = if c.provisioned {
                    sqlx::query_as(
                        "UPDATE devices SET state = 'provisioned' WHERE id = $1 AND state = 'added' \
                         RETURNING domain_id, mac, model, firmware",
                    )
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?
                } else {
                    None
                };
                if let Some((domain, mac, model, firmware)) = registered {
                    super::codes::event(
                        &mut tx,
                        DomainId(domain),
                        "device.registered",
                        serde_json::json!({"mac": mac, "model": model, "firmware": firmware, "ip": ip, "at": c.at}),
                    )
                    .await?;
                }
                continue;
            }
            // Unknown MACs: only into domains whose policy asks, from their networks.
            if recording.is_none() {
                let rows: Vec<(i64, Json<PhonePolicy>)> =
                    sqlx::query_as("SELECT id, phone_policy FROM domains ORDER BY id")
                        .fetch_all(&mut *tx)
                        .await?;
                recording = Some(
                    rows.into_iter()
                        .map(|(id, p)| (id, p.0))
                        .filter(|(_, p)| p.record_unassigned)
                        .collect(),
                );
            }
            let Some((domain, _)) = recording
                .iter()
                .flatten()
                .find(|(_, p)| p.in_networks(c.ip))
            else {
                continue;
            };
            let updated = sqlx::query(
                "UPDATE unassigned_devices SET last_contact = $1, last_ip = $2, \
                 firmware = CASE WHEN $3 = '' THEN firmware ELSE $3 END, \
                 vendor = CASE WHEN $4 = '' THEN vendor ELSE $4 END, \
                 model = CASE WHEN $5 = '' THEN model ELSE $5 END \
                 WHERE domain_id = $6 AND mac = $7",
            )
            .bind(at)
            .bind(&ip)
            .bind(&c.firmware)
            .bind(&c.vendor)
            .bind(&c.model)
            .bind(domain)
            .bind(c.mac.to_string())
            .execute(&mut *tx)
            .await?;
            if updated.rows_affected() == 0 {
                sqlx::query(
                    "INSERT INTO unassigned_devices (domain_id, mac, vendor, model, firmware, last_ip, first_contact, last_contact) \
                     SELECT $1, $2, $3, $4, $5, $6, $7, $7 \
                     WHERE (SELECT COUNT(*) FROM unassigned_devices WHERE domain_id = $1) < $8 \
                     AND NOT EXISTS (SELECT 1 FROM devices WHERE mac = $2) \
                     ON CONFLICT (domain_id, mac) DO NOTHING",
                )
                .bind(domain)
                .bind(c.mac.to_string())
                .bind(&c.vendor)
                .bind(&c.model)
                .bind(&c.firmware)
                .bind(&ip)
                .bind(at)
                .bind(MAX_UNASSIGNED_PER_DOMAIN)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn record_refusals(&self, refusals: &[Refusal]) -> Result<()> {
        if refusals.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        let mut devices = BTreeSet::new();
        for r in refusals {
            let done = sqlx::query(
                "INSERT INTO device_refusals (device_id, at, ip, file, reason) \
                 SELECT id, $2, $3, $4, $5 FROM devices WHERE mac = $1",
            )
            .bind(r.mac.to_string())
            .bind(r.at.timestamp_millis())
            .bind(r.ip.to_string())
            .bind(&r.file)
            .bind(&r.reason)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() > 0 {
                devices.insert(r.mac.to_string());
            }
        }
        for mac in &devices {
            sqlx::query(
                "DELETE FROM device_refusals WHERE device_id = (SELECT id FROM devices WHERE mac = $1) \
                 AND id NOT IN (SELECT r.id FROM device_refusals r JOIN devices d ON d.id = r.device_id \
                 WHERE d.mac = $1 ORDER BY r.id DESC LIMIT $2)",
            )
            .bind(mac)
            .bind(REFUSALS_KEPT)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn store_upload(&self, device_id: i64, name: &str, body: &[u8]) -> Result<()> {
        sqlx::query(
            "INSERT INTO device_uploads (device_id, name, at, body) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (device_id, name) DO UPDATE SET at = excluded.at, body = excluded.body",
        )
        .bind(device_id)
        .bind(name)
        .bind(now())
        .bind(body)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn device_credentials(&self, d: DomainId, mac: Mac) -> Result<DeviceCredentials> {
        let r = credential_row(&mut *self.pool.acquire().await?, d, mac).await?;
        let t = now();
        let seal = |b: Option<Vec<u8>>| b.map(|b| self.cipher.decrypt(&b)).transpose();
        Ok(DeviceCredentials {
            token: seal(r.token_enc)?,
            previous_token_until: r.prev_token_until.filter(|&u| u > t).map(ts),
            armed_until: r.armed_until.filter(|&u| u > t).map(ts),
            admin_password: seal(r.admin_password_enc)?,
            fetch_password: seal(r.fetch_password_enc)?,
        })
    }

    async fn rotate_device_token(&self, actor: &Actor, d: DomainId, mac: Mac) -> Result<()> {
        let mut tx = self.write().await?;
        let r = credential_row(&mut tx, d, mac).await?;
        let policy = policy_of(&mut tx, d).await?;
        let token = new_url_token();
        let grace = now() + i64::from(policy.token_grace_minutes) * MINUTE_MS;
        // A device added before tokens existed gets its first one, and its passwords.
        let fill = |b: Option<Vec<u8>>, fresh: &SecretString| {
            b.unwrap_or_else(|| self.cipher.encrypt(fresh.expose()))
        };
        let fresh = DeviceSecrets::generate();
        sqlx::query(
            "UPDATE devices SET prev_token_hash = token_hash, prev_token_until = CASE WHEN token_hash IS NULL THEN NULL ELSE $1 END, \
             token_hash = $2, token_enc = $3, admin_password_enc = $4, fetch_password_enc = $5 WHERE id = $6",
        )
        .bind(grace)
        .bind(digest(token.expose()))
        .bind(self.cipher.encrypt(token.expose()))
        .bind(fill(r.admin_password_enc, &fresh.admin_password))
        .bind(fill(r.fetch_password_enc, &fresh.fetch_password))
        .bind(r.id)
        .execute(&mut *tx)
        .await?;
        audit(
            &mut tx,
            actor,
            "device.rotate-token",
            Some(d),
            &mac.to_string(),
            None,
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn arm_device(
        &self,
        actor: &Actor,
        d: DomainId,
        mac: Mac,
        minutes: Option<u32>,
    ) -> Result<Option<Timestamp>> {
        let mut tx = self.write().await?;
        let id = device_id(&mut tx, d, mac).await?;
        let minutes = match minutes {
            Some(m) => m,
            None => policy_of(&mut tx, d).await?.arm_minutes,
        };
        if minutes > PhonePolicy::MAX_MINUTES {
            return Err(provisor_domain::Invalid::new(
                "minutes",
                format!("must be at most {}", PhonePolicy::MAX_MINUTES),
            )
            .into());
        }
        let until = (minutes > 0).then(|| now() + i64::from(minutes) * MINUTE_MS);
        sqlx::query("UPDATE devices SET armed_until = $1 WHERE id = $2")
            .bind(until)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let action = if until.is_some() {
            "device.arm"
        } else {
            "device.disarm"
        };
        let after = serde_json::json!({ "armed_until": until.map(ts) });
        audit(
            &mut tx,
            actor,
            action,
            Some(d),
            &mac.to_string(),
            None,
            Some(after),
        )
        .await?;
        tx.commit().await?;
        Ok(until.map(ts))
    }

    async fn list_refusals(
        &self,
        d: DomainId,
        mac: Mac,
        req: PageRequest,
    ) -> Result<Page<RefusalEntry>> {
        let mut c = self.pool.acquire().await?;
        let id = device_id(&mut c, d, mac).await?;
        let rows: Vec<(i64, i64, String, String, String)> = sqlx::query_as(
            "SELECT id, at, ip, file, reason FROM device_refusals WHERE device_id = $1 AND id < $2 \
             ORDER BY id DESC LIMIT $3",
        )
        .bind(id)
        .bind(req.after.unwrap_or(i64::MAX))
        .bind(fetch_limit(req))
        .fetch_all(&mut *c)
        .await?;
        let items = rows
            .into_iter()
            .map(|(id, at, ip, file, reason)| RefusalEntry {
                id,
                at: ts(at),
                ip,
                file,
                reason,
            })
            .collect();
        Ok(page(items, req, |r| r.id))
    }

    async fn list_unassigned(
        &self,
        d: DomainId,
        req: PageRequest,
    ) -> Result<Page<UnassignedDevice>> {
        let rows: Vec<UnassignedRow> = sqlx::query_as(
            "SELECT id, mac, vendor, model, firmware, last_ip, first_contact, last_contact \
             FROM unassigned_devices WHERE domain_id = $1 AND id > $2 \
             AND mac NOT IN (SELECT mac FROM devices) ORDER BY id LIMIT $3",
        )
        .bind(d.0)
        .bind(req.after.unwrap_or(0))
        .bind(fetch_limit(req))
        .fetch_all(&self.pool)
        .await?;
        let items = rows
            .into_iter()
            .map(|r| {
                Ok(UnassignedDevice {
                    id: r.id,
                    mac: Mac::parse(&r.mac)?,
                    vendor: r.vendor,
                    model: r.model,
                    firmware: r.firmware,
                    last_ip: r.last_ip,
                    first_contact: ts(r.first_contact),
                    last_contact: ts(r.last_contact),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(page(items, req, |u| u.id))
    }

    async fn list_uploads(&self, d: DomainId, mac: Mac) -> Result<Vec<UploadEntry>> {
        let mut c = self.pool.acquire().await?;
        let id = device_id(&mut c, d, mac).await?;
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT name, at, CAST(LENGTH(body) AS BIGINT) FROM device_uploads WHERE device_id = $1 ORDER BY name",
        )
        .bind(id)
        .fetch_all(&mut *c)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(name, at, size)| UploadEntry {
                name,
                at: ts(at),
                size: size.max(0) as u64,
            })
            .collect())
    }

    async fn upload(&self, d: DomainId, mac: Mac, name: &str) -> Result<Vec<u8>> {
        let mut c = self.pool.acquire().await?;
        let id = device_id(&mut c, d, mac).await?;
        sqlx::query_scalar("SELECT body FROM device_uploads WHERE device_id = $1 AND name = $2")
            .bind(id)
            .bind(name)
            .fetch_optional(&mut *c)
            .await?
            .ok_or(StoreError::NotFound("upload"))
    }
}
