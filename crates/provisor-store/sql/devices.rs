//! Devices and their lines.

use std::collections::HashMap;

use async_trait::async_trait;
use provisor_domain::Mac;
use provisor_domain::model::*;
use provisor_domain::secret::Cipher;
use provisor_domain::settings::Settings;
use provisor_store::{DeviceStore, Page, PageRequest, Result, StoreError};
use sqlx::QueryBuilder;
use sqlx::types::Json;

use super::directory::{ACCOUNT, CATEGORY, USER, id_of};
use super::{Conn, Db, SqlStore, audit, fetch_limit, json, now, page, ts, unique};

const DEVICE_SELECT: &str = "SELECT d.id, d.mac, d.vendor, d.model, d.firmware, d.bootcode, d.state, c.name AS category, \
     u.username AS owner, d.first_contact, d.last_contact, d.last_ip, d.settings, d.created_at, d.updated_at \
     FROM devices d LEFT JOIN categories c ON c.id = d.category_id LEFT JOIN users u ON u.id = d.user_id";

#[derive(sqlx::FromRow)]
struct DeviceRow {
    id: i64,
    mac: String,
    vendor: String,
    model: String,
    firmware: String,
    bootcode: String,
    state: String,
    category: Option<String>,
    owner: Option<String>,
    first_contact: Option<i64>,
    last_contact: Option<i64>,
    last_ip: Option<String>,
    settings: Json<Settings>,
    created_at: i64,
    updated_at: i64,
}

impl DeviceRow {
    fn into_device(self, lines: Vec<DeviceLine>) -> Result<Device> {
        Ok(Device {
            id: self.id,
            mac: Mac::parse(&self.mac)?,
            vendor: self.vendor,
            model: self.model,
            firmware: self.firmware,
            bootcode: self.bootcode,
            state: self.state.parse()?,
            category: self.category,
            user: self.owner,
            lines,
            first_contact: self.first_contact.map(ts),
            last_contact: self.last_contact.map(ts),
            last_ip: self.last_ip,
            settings: self.settings.0,
            created_at: ts(self.created_at),
            updated_at: ts(self.updated_at),
        })
    }
}

#[derive(sqlx::FromRow)]
struct LineRow {
    device_id: i64,
    position: i32,
    account_id: i64,
    sip_user: String,
}

/// Attaches their lines to device rows with one query.
async fn with_lines(c: &mut Conn, rows: Vec<DeviceRow>) -> Result<Vec<Device>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = QueryBuilder::<Db>::new(
        "SELECT l.device_id, l.position, l.account_id, a.sip_user FROM device_lines l \
         JOIN sip_accounts a ON a.id = l.account_id WHERE l.device_id IN (",
    );
    let mut ids = q.separated(", ");
    for r in &rows {
        ids.push_bind(r.id);
    }
    q.push(") ORDER BY l.device_id, l.position");
    let mut lines: HashMap<i64, Vec<DeviceLine>> = HashMap::new();
    for l in q.build_query_as::<LineRow>().fetch_all(&mut *c).await? {
        lines.entry(l.device_id).or_default().push(DeviceLine {
            position: l.position as u32,
            account_id: l.account_id,
            sip_user: l.sip_user,
        });
    }
    rows.into_iter()
        .map(|r| {
            let l = lines.remove(&r.id).unwrap_or_default();
            r.into_device(l)
        })
        .collect()
}

pub(super) async fn device_row(c: &mut Conn, d: DomainId, mac: Mac) -> Result<Device> {
    let row: DeviceRow = sqlx::query_as(&format!(
        "{DEVICE_SELECT} WHERE d.domain_id = $1 AND d.mac = $2"
    ))
    .bind(d.0)
    .bind(mac.to_string())
    .fetch_optional(&mut *c)
    .await?
    .ok_or(StoreError::NotFound("device"))?;
    Ok(with_lines(c, vec![row]).await?.remove(0))
}

/// Replaces a device's lines with the accounts named, in order (positions from 1).
pub(super) async fn set_lines(c: &mut Conn, device_id: i64, lines: &[(u32, i64)]) -> Result<()> {
    sqlx::query("DELETE FROM device_lines WHERE device_id = $1")
        .bind(device_id)
        .execute(&mut *c)
        .await?;
    for (position, account_id) in lines {
        sqlx::query(
            "INSERT INTO device_lines (device_id, position, account_id) VALUES ($1, $2, $3)",
        )
        .bind(device_id)
        .bind(*position as i32)
        .bind(account_id)
        .execute(&mut *c)
        .await?;
    }
    Ok(())
}

/// Resolves SIP user names to account ids, in line order; refuses a repeated account.
async fn line_accounts(c: &mut Conn, d: DomainId, sip_users: &[String]) -> Result<Vec<(u32, i64)>> {
    let mut out = Vec::with_capacity(sip_users.len());
    for (i, sip_user) in sip_users.iter().enumerate() {
        if sip_users[..i].contains(sip_user) {
            return Err(provisor_domain::Invalid::new(
                "lines",
                format!("'{sip_user}' is given twice"),
            )
            .into());
        }
        out.push((
            i as u32 + 1,
            id_of(c, d, "lines", &ACCOUNT, sip_user).await?,
        ));
    }
    Ok(out)
}

async fn optional_id(
    c: &mut Conn,
    d: DomainId,
    field: &str,
    kind: &super::directory::Named,
    value: Option<&str>,
) -> Result<Option<i64>> {
    match value {
        Some(v) => Ok(Some(id_of(c, d, field, kind, v).await?)),
        None => Ok(None),
    }
}

/// Adds a device in the caller's transaction, with its lines, secrets and audit entry.
pub(super) async fn insert_device(
    tx: &mut Conn,
    cipher: &Cipher,
    actor: &Actor,
    d: DomainId,
    new: &NewDevice,
) -> Result<Device> {
    let category = optional_id(tx, d, "category", &CATEGORY, new.category.as_deref()).await?;
    let owner = optional_id(tx, d, "user", &USER, new.user.as_deref()).await?;
    let lines = line_accounts(tx, d, &new.lines).await?;
    let t = now();
    let id: i64 = sqlx::query_scalar(
            "INSERT INTO devices (domain_id, mac, vendor, model, state, category_id, user_id, settings, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING id",
        )
        .bind(d.0)
        .bind(new.mac.to_string())
        .bind(&new.vendor)
        .bind(&new.model)
        .bind(DeviceState::Added.as_str())
        .bind(category)
        .bind(owner)
        .bind(Json(&new.settings))
        .bind(t)
        .fetch_one(&mut *tx)
        .await
        .map_err(unique(mac_taken(new.mac)))?;
    set_lines(tx, id, &lines).await?;
    super::phones::issue_secrets(tx, cipher, d, id).await?;
    let device = device_row(tx, d, new.mac).await?;
    audit(
        tx,
        actor,
        "device.create",
        Some(d),
        &new.mac.to_string(),
        None,
        Some(json(&device)),
    )
    .await?;
    Ok(device)
}

fn mac_taken(mac: Mac) -> String {
    format!("a device with MAC {mac} already exists")
}

#[async_trait]
impl DeviceStore for SqlStore {
    async fn create_device(&self, actor: &Actor, d: DomainId, new: &NewDevice) -> Result<Device> {
        let mut tx = self.write().await?;
        let device = insert_device(&mut tx, &self.cipher, actor, d, new).await?;
        tx.commit().await?;
        Ok(device)
    }

    async fn device(&self, d: DomainId, mac: Mac) -> Result<Device> {
        device_row(&mut *self.pool.acquire().await?, d, mac).await
    }

    async fn device_domain(&self, mac: Mac) -> Result<DomainId> {
        sqlx::query_scalar::<_, i64>("SELECT domain_id FROM devices WHERE mac = $1")
            .bind(mac.to_string())
            .fetch_optional(&self.pool)
            .await?
            .map(DomainId)
            .ok_or(StoreError::NotFound("device"))
    }

    async fn list_devices(
        &self,
        d: DomainId,
        filter: &DeviceFilter,
        req: PageRequest,
    ) -> Result<Page<Device>> {
        let mut q = QueryBuilder::<Db>::new(DEVICE_SELECT);
        q.push(" WHERE d.domain_id = ").push_bind(d.0);
        q.push(" AND d.id > ").push_bind(req.after.unwrap_or(0));
        if let Some(mac) = filter.mac {
            q.push(" AND d.mac = ").push_bind(mac.to_string());
        }
        // By the owner's and the category's ids, so the indexes on them are used (a join
        // on the name would go through every device of the domain).
        if let Some(user) = &filter.user {
            q.push(" AND d.user_id = (SELECT id FROM users WHERE domain_id = ")
                .push_bind(d.0)
                .push(" AND username = ")
                .push_bind(user.clone())
                .push(")");
        }
        if let Some(category) = &filter.category {
            q.push(" AND d.category_id = (SELECT id FROM categories WHERE domain_id = ")
                .push_bind(d.0)
                .push(" AND name = ")
                .push_bind(category.clone())
                .push(")");
        }
        if let Some(state) = filter.state {
            q.push(" AND d.state = ").push_bind(state.as_str());
        }
        q.push(" ORDER BY d.id LIMIT ").push_bind(fetch_limit(req));
        let mut conn = self.pool.acquire().await?;
        let rows = q
            .build_query_as::<DeviceRow>()
            .fetch_all(&mut *conn)
            .await?;
        let devices = with_lines(&mut conn, rows).await?;
        Ok(page(devices, req, |x| x.id))
    }

    async fn update_device(
        &self,
        actor: &Actor,
        d: DomainId,
        mac: Mac,
        patch: &DevicePatch,
    ) -> Result<Device> {
        let mut tx = self.write().await?;
        let before = device_row(&mut tx, d, mac).await?;
        // Only what the patch names is looked up; absent fields keep their column.
        let category = match &patch.category {
            Some(c) => Some(optional_id(&mut tx, d, "category", &CATEGORY, c.as_deref()).await?),
            None => None,
        };
        let owner = match &patch.user {
            Some(u) => Some(optional_id(&mut tx, d, "user", &USER, u.as_deref()).await?),
            None => None,
        };
        sqlx::query(
            "UPDATE devices SET vendor = $1, model = $2, state = $3, \
             category_id = CASE WHEN $4 THEN $5 ELSE category_id END, \
             user_id = CASE WHEN $6 THEN $7 ELSE user_id END, settings = $8, updated_at = $9 \
             WHERE id = $10",
        )
        .bind(patch.vendor.as_ref().unwrap_or(&before.vendor))
        .bind(patch.model.as_ref().unwrap_or(&before.model))
        .bind(patch.state.unwrap_or(before.state).as_str())
        .bind(category.is_some())
        .bind(category.flatten())
        .bind(owner.is_some())
        .bind(owner.flatten())
        .bind(Json(patch.settings.as_ref().unwrap_or(&before.settings)))
        .bind(now())
        .bind(before.id)
        .execute(&mut *tx)
        .await?;
        if let Some(lines) = &patch.lines {
            let lines = line_accounts(&mut tx, d, lines).await?;
            set_lines(&mut tx, before.id, &lines).await?;
        }
        let after = device_row(&mut tx, d, mac).await?;
        audit(
            &mut tx,
            actor,
            "device.update",
            Some(d),
            &mac.to_string(),
            Some(json(&before)),
            Some(json(&after)),
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    async fn delete_device(&self, actor: &Actor, d: DomainId, mac: Mac) -> Result<()> {
        let mut tx = self.write().await?;
        let before = device_row(&mut tx, d, mac).await?;
        sqlx::query("DELETE FROM devices WHERE id = $1")
            .bind(before.id)
            .execute(&mut *tx)
            .await?;
        audit(
            &mut tx,
            actor,
            "device.delete",
            Some(d),
            &mac.to_string(),
            Some(json(&before)),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
