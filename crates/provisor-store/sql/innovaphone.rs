//! innovaphone: a domain's AppWebsocket and sysclient secrets, third-party phones a PBX
//! hands over, and devices registered over sysclient.

use async_trait::async_trait;
use provisor_domain::Mac;
use provisor_domain::innovaphone::{
    EthIf, InnovaphoneDevice, InnovaphonePatch, InnovaphoneSettings, PbxPhone, SysclientJoin,
    SysclientReport,
};
use provisor_domain::model::*;
use provisor_domain::secret::{Cipher, SecretString};
use provisor_store::{
    InnovaphoneDomain, InnovaphoneStore, PbxPhoneResult, Result, StoreError, Sysclient,
};
use serde_json::json;
use sqlx::types::Json;

use super::codes::{claim, event, used_by};
use super::directory::{CATEGORY, account_json, account_row, id_of, insert_account, insert_user};
use super::{Conn, SqlStore, audit, now, ts};

/// Keeps a sysclient's password and report with its new device (caller's transaction).
pub(super) async fn insert_sysclient(
    c: &mut Conn,
    cipher: &Cipher,
    d: DomainId,
    device_id: i64,
    join: &SysclientJoin,
) -> Result<()> {
    let r = &join.report;
    sqlx::query(
        "INSERT INTO innovaphone_devices (device_id, domain_id, kind, password_enc, product, version, platform, \
         interfaces, last_seen, updated_at) VALUES ($1, $2, 'sysclient', $3, $4, $5, $6, $7, $8, $8)",
    )
    .bind(device_id)
    .bind(d.0)
    .bind(cipher.encrypt(join.password.expose()))
    .bind(&r.product)
    .bind(&r.version)
    .bind(&r.platform)
    .bind(Json(&r.interfaces))
    .bind(now())
    .execute(&mut *c)
    .await?;
    Ok(())
}

async fn settings_of(c: &mut Conn, d: DomainId) -> Result<InnovaphoneSettings> {
    let row: Option<(bool, bool, String, Option<String>)> = sqlx::query_as(
        "SELECT i.app_password_enc IS NOT NULL, i.admin_password_enc IS NOT NULL, i.pbx_domain, c.name \
         FROM innovaphone_domains i LEFT JOIN categories c ON c.id = i.default_category_id \
         WHERE i.domain_id = $1",
    )
    .bind(d.0)
    .fetch_optional(&mut *c)
    .await?;
    Ok(match row {
        Some((app_password_set, admin_password_set, pbx_domain, default_category)) => {
            InnovaphoneSettings {
                app_password_set,
                admin_password_set,
                pbx_domain,
                default_category,
            }
        }
        None => InnovaphoneSettings::default(),
    })
}

fn open(cipher: &Cipher, blob: Option<Vec<u8>>) -> Result<Option<SecretString>> {
    Ok(blob.map(|b| cipher.decrypt(&b)).transpose()?)
}

/// The user of this name (created if new, its display name brought up to date).
async fn pbx_user(c: &mut Conn, actor: &Actor, d: DomainId, phone: &PbxPhone) -> Result<i64> {
    let found: Option<(i64, String)> =
        sqlx::query_as("SELECT id, display_name FROM users WHERE domain_id = $1 AND username = $2")
            .bind(d.0)
            .bind(&phone.user.username)
            .fetch_optional(&mut *c)
            .await?;
    match found {
        None => Ok(insert_user(c, actor, d, &phone.user, None).await?.id),
        Some((id, name)) if name == phone.user.display_name => Ok(id),
        Some((id, name)) => {
            sqlx::query("UPDATE users SET display_name = $1, updated_at = $2 WHERE id = $3")
                .bind(&phone.user.display_name)
                .bind(now())
                .bind(id)
                .execute(&mut *c)
                .await?;
            audit(
                c,
                actor,
                "user.update",
                Some(d),
                &phone.user.username,
                Some(json!({"display_name": name})),
                Some(json!({"display_name": phone.user.display_name})),
            )
            .await?;
            Ok(id)
        }
    }
}

/// The user's SIP account of this SIP user (created if new, brought up to date otherwise);
/// an account of that name held by another user is a conflict.
async fn pbx_account(
    c: &mut Conn,
    cipher: &Cipher,
    actor: &Actor,
    d: DomainId,
    user_id: i64,
    phone: &PbxPhone,
) -> Result<i64> {
    let new = &phone.account;
    #[allow(clippy::type_complexity)]
    let found: Option<(i64, i64, String, String, String, Vec<u8>)> = sqlx::query_as(
        "SELECT id, user_id, auth_user, display_name, registrar, password_enc FROM sip_accounts \
         WHERE domain_id = $1 AND sip_user = $2",
    )
    .bind(d.0)
    .bind(&new.sip_user)
    .fetch_optional(&mut *c)
    .await?;
    let Some((id, owner, auth_user, display_name, registrar, password_enc)) = found else {
        return Ok(insert_account(c, cipher, actor, d, user_id, new).await?.id);
    };
    if owner != user_id {
        return Err(StoreError::Conflict(format!(
            "SIP account '{}' belongs to another user",
            new.sip_user
        )));
    }
    let password_changed = cipher.decrypt(&password_enc)?.expose() != new.password.expose();
    if !password_changed
        && auth_user == new.auth_user
        && display_name == new.display_name
        && registrar == new.registrar
    {
        return Ok(id);
    }
    let before = account_row(c, d, id).await?;
    sqlx::query(
        "UPDATE sip_accounts SET auth_user = $1, display_name = $2, registrar = $3, password_enc = $4, \
         updated_at = $5 WHERE id = $6",
    )
    .bind(&new.auth_user)
    .bind(&new.display_name)
    .bind(&new.registrar)
    .bind(cipher.encrypt(new.password.expose()))
    .bind(now())
    .bind(id)
    .execute(&mut *c)
    .await?;
    let after = account_row(c, d, id).await?;
    audit(
        c,
        actor,
        "account.update",
        Some(d),
        &new.sip_user,
        Some(super::json(&before)),
        Some(account_json(&after, password_changed)),
    )
    .await?;
    Ok(id)
}

#[async_trait]
impl InnovaphoneStore for SqlStore {
    async fn innovaphone(&self, d: DomainId) -> Result<InnovaphoneSettings> {
        settings_of(&mut *self.pool.acquire().await?, d).await
    }

    async fn set_innovaphone(
        &self,
        actor: &Actor,
        d: DomainId,
        patch: &InnovaphonePatch,
    ) -> Result<InnovaphoneSettings> {
        let mut tx = self.write().await?;
        let before = settings_of(&mut tx, d).await?;
        let category = match &patch.default_category {
            Some(Some(name)) => Some(Some(
                id_of(&mut tx, d, "default_category", &CATEGORY, name).await?,
            )),
            Some(None) => Some(None),
            None => None,
        };
        let secret = |v: &Option<Option<SecretString>>| {
            v.as_ref()
                .map(|p| p.as_ref().map(|p| self.cipher.encrypt(p.expose())))
        };
        let (app, admin) = (secret(&patch.app_password), secret(&patch.admin_password));
        sqlx::query(
            "INSERT INTO innovaphone_domains (domain_id, updated_at) VALUES ($1, $2) \
             ON CONFLICT (domain_id) DO NOTHING",
        )
        .bind(d.0)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE innovaphone_domains SET \
             app_password_enc = CASE WHEN $1 THEN $2 ELSE app_password_enc END, \
             admin_password_enc = CASE WHEN $3 THEN $4 ELSE admin_password_enc END, \
             pbx_domain = COALESCE($5, pbx_domain), \
             default_category_id = CASE WHEN $6 THEN $7 ELSE default_category_id END, \
             updated_at = $8 WHERE domain_id = $9",
        )
        .bind(app.is_some())
        .bind(app.flatten())
        .bind(admin.is_some())
        .bind(admin.flatten())
        .bind(patch.pbx_domain.as_ref())
        .bind(category.is_some())
        .bind(category.flatten())
        .bind(now())
        .bind(d.0)
        .execute(&mut *tx)
        .await?;
        let after = settings_of(&mut tx, d).await?;
        let mut after_json = super::json(&after);
        for (field, v) in [
            ("app_password", &patch.app_password),
            ("admin_password", &patch.admin_password),
        ] {
            if let Some(v) = v {
                after_json[field] = if v.is_some() {
                    "(changed)"
                } else {
                    "(removed)"
                }
                .into();
            }
        }
        audit(
            &mut tx,
            actor,
            "domain.innovaphone",
            Some(d),
            "innovaphone",
            Some(super::json(&before)),
            Some(after_json),
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    async fn innovaphone_domain(&self, name: &str) -> Result<Option<InnovaphoneDomain>> {
        #[allow(clippy::type_complexity)]
        let row: Option<(i64, String, Option<Vec<u8>>, Option<Vec<u8>>, Option<String>)> =
            sqlx::query_as(
                "SELECT d.id, d.name, i.app_password_enc, i.admin_password_enc, i.pbx_domain \
                 FROM domains d LEFT JOIN innovaphone_domains i ON i.domain_id = d.id WHERE d.name = $1",
            )
            .bind(name.to_ascii_lowercase())
            .fetch_optional(&self.pool)
            .await?;
        let Some((id, name, app, admin, pbx_domain)) = row else {
            return Ok(None);
        };
        Ok(Some(InnovaphoneDomain {
            id: DomainId(id),
            name,
            app_password: open(&self.cipher, app)?,
            admin_password: open(&self.cipher, admin)?,
            pbx_domain: pbx_domain.unwrap_or_default(),
        }))
    }

    async fn provision_pbx_phone(
        &self,
        actor: &Actor,
        d: DomainId,
        phone: &PbxPhone,
    ) -> Result<PbxPhoneResult> {
        let mut tx = self.write().await?;
        let mac = phone.mac;
        let existing: Option<(i64, i64)> =
            sqlx::query_as("SELECT id, domain_id FROM devices WHERE mac = $1")
                .bind(mac.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        if existing.is_some_and(|(_, domain)| domain != d.0) {
            return Err(StoreError::Conflict(format!(
                "MAC {mac} cannot be provisioned in this domain"
            )));
        }
        let user_id = pbx_user(&mut tx, actor, d, phone).await?;
        let account_id = pbx_account(&mut tx, &self.cipher, actor, d, user_id, phone).await?;
        let claimed = match &phone.code {
            Some(code) => {
                let hash = self.cipher.keyed_digest(code);
                claim(&mut tx, &hash, mac, None, Some(d)).await?
            }
            None => None,
        };
        let category_id: Option<i64> = match claimed.as_ref().and_then(|c| c.category_id) {
            Some(id) => Some(id),
            None if existing.is_some() => None,
            None => sqlx::query_scalar(
                "SELECT default_category_id FROM innovaphone_domains WHERE domain_id = $1",
            )
            .bind(d.0)
            .fetch_optional(&mut *tx)
            .await?
            .flatten(),
        };
        let category = super::directory::category_name(&mut tx, category_id).await?;
        let created = existing.is_none();
        let device_id = match existing {
            None => {
                let new = NewDevice {
                    mac,
                    vendor: String::new(),
                    model: String::new(),
                    category: category.clone(),
                    user: Some(phone.user.username.clone()),
                    lines: vec![phone.account.sip_user.clone()],
                    settings: Default::default(),
                };
                let device =
                    super::devices::insert_device(&mut tx, &self.cipher, actor, d, &new).await?;
                event(
                    &mut tx,
                    d,
                    "device.provisioned",
                    json!({
                        "mac": mac, "at": ts(now()), "user": phone.user.username, "category": category,
                        "by": "innovaphone", "hwid": phone.hwid,
                        "code_id": claimed.as_ref().map(|c| c.id), "lines": device.lines,
                    }),
                )
                .await?;
                device.id
            }
            Some((id, _)) => {
                let before = super::devices::device_row(&mut tx, d, mac).await?;
                let has_line = before.lines.iter().any(|l| l.account_id == account_id);
                if !has_line {
                    // The PBX user's account becomes line 1; other lines stay.
                    let mut lines: Vec<(u32, i64)> = before
                        .lines
                        .iter()
                        .filter(|l| l.position != 1)
                        .map(|l| (l.position, l.account_id))
                        .collect();
                    lines.insert(0, (1, account_id));
                    super::devices::set_lines(&mut tx, id, &lines).await?;
                }
                sqlx::query(
                    "UPDATE devices SET user_id = $1, category_id = COALESCE($2, category_id), \
                     updated_at = $3 WHERE id = $4 \
                     AND (user_id IS DISTINCT FROM $1 OR category_id IS DISTINCT FROM COALESCE($2, category_id))",
                )
                .bind(user_id)
                .bind(category_id)
                .bind(now())
                .bind(id)
                .execute(&mut *tx)
                .await?;
                let after = super::devices::device_row(&mut tx, d, mac).await?;
                if after.lines != before.lines
                    || after.user != before.user
                    || after.category != before.category
                {
                    audit(
                        &mut tx,
                        actor,
                        "device.update",
                        Some(d),
                        &mac.to_string(),
                        Some(super::json(&before)),
                        Some(super::json(&after)),
                    )
                    .await?;
                }
                id
            }
        };
        sqlx::query(
            "INSERT INTO innovaphone_devices (device_id, domain_id, kind, hwid, updated_at) \
             VALUES ($1, $2, 'pbx-phone', $3, $4) \
             ON CONFLICT (device_id) DO UPDATE SET hwid = excluded.hwid, updated_at = excluded.updated_at \
             WHERE innovaphone_devices.hwid <> excluded.hwid",
        )
        .bind(device_id)
        .bind(d.0)
        .bind(&phone.hwid)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        if let Some(claimed) = &claimed {
            used_by(&mut tx, claimed, device_id).await?;
        }
        let device = super::devices::device_row(&mut tx, d, mac).await?;
        tx.commit().await?;
        Ok(PbxPhoneResult { device, created })
    }

    async fn sysclient(&self, d: DomainId, mac: Mac) -> Result<Option<Sysclient>> {
        let row: Option<(i64, Option<Vec<u8>>)> = sqlx::query_as(
            "SELECT i.device_id, i.password_enc FROM innovaphone_devices i JOIN devices d ON d.id = i.device_id \
             WHERE d.mac = $1 AND i.domain_id = $2 AND d.domain_id = $2 AND i.kind = 'sysclient'",
        )
        .bind(mac.to_string())
        .bind(d.0)
        .fetch_optional(&self.pool)
        .await?;
        let Some((device_id, Some(blob))) = row else {
            return Ok(None);
        };
        Ok(Some(Sysclient {
            device_id,
            password: self.cipher.decrypt(&blob)?,
        }))
    }

    async fn innovaphone_device(&self, d: DomainId, mac: Mac) -> Result<InnovaphoneDevice> {
        #[allow(clippy::type_complexity)]
        let row: Option<(
            String,
            String,
            String,
            String,
            String,
            Json<Vec<EthIf>>,
            Option<i64>,
        )> = sqlx::query_as(
            "SELECT i.kind, i.hwid, i.product, i.version, i.platform, i.interfaces, i.last_seen \
                 FROM innovaphone_devices i JOIN devices d ON d.id = i.device_id \
                 WHERE d.mac = $1 AND d.domain_id = $2",
        )
        .bind(mac.to_string())
        .bind(d.0)
        .fetch_optional(&self.pool)
        .await?;
        let (kind, hwid, product, version, platform, interfaces, last_seen) =
            row.ok_or(StoreError::NotFound("innovaphone device"))?;
        Ok(InnovaphoneDevice {
            kind,
            hwid,
            product,
            version,
            platform,
            interfaces: interfaces.0,
            last_seen: last_seen.map(ts),
        })
    }

    async fn sysclient_seen(
        &self,
        d: DomainId,
        mac: Mac,
        report: &SysclientReport,
        ip: Option<std::net::IpAddr>,
    ) -> Result<()> {
        let mut tx = self.write().await?;
        let at = now();
        let id: Option<i64> = sqlx::query_scalar(
            "UPDATE devices SET model = CASE WHEN $1 = '' THEN model ELSE $1 END, \
             firmware = CASE WHEN $2 = '' THEN firmware ELSE $2 END, \
             first_contact = COALESCE(first_contact, $3), last_contact = $3, \
             last_ip = COALESCE($4, last_ip) WHERE domain_id = $5 AND mac = $6 \
             AND EXISTS (SELECT 1 FROM innovaphone_devices i WHERE i.device_id = devices.id AND i.kind = 'sysclient') \
             RETURNING id",
        )
        .bind(&report.product)
        .bind(&report.version)
        .bind(at)
        .bind(ip.map(|i| i.to_string()))
        .bind(d.0)
        .bind(mac.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        let id = id.ok_or(StoreError::NotFound("device"))?;
        sqlx::query(
            "UPDATE innovaphone_devices SET product = $1, version = $2, platform = $3, interfaces = $4, \
             last_seen = $5, updated_at = $5 WHERE device_id = $6",
        )
        .bind(&report.product)
        .bind(&report.version)
        .bind(&report.platform)
        .bind(Json(&report.interfaces))
        .bind(at)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
