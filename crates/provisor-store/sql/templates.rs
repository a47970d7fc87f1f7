//! Templates stored by admins, per domain or per category.

use async_trait::async_trait;
use provisor_domain::model::{Actor, DomainId};
use provisor_domain::template::{DeviceTemplate, StoredTemplate, TemplateOrigin};
use provisor_domain::token::digest;
use provisor_store::{Result, StoreError, TemplateKey, TemplateStore};
use serde_json::json;

use super::directory::{CATEGORY, id_of};
use super::{Conn, SqlStore, audit, now, ts};

#[derive(sqlx::FromRow)]
struct TemplateRow {
    category: Option<String>,
    vendor: String,
    name: String,
    origin: String,
    source: String,
    updated_at: i64,
    updated_by: String,
}

impl From<TemplateRow> for StoredTemplate {
    fn from(r: TemplateRow) -> Self {
        StoredTemplate {
            category: r.category,
            vendor: r.vendor,
            name: r.name,
            origin: TemplateOrigin::parse(&r.origin),
            source: r.source,
            updated_at: ts(r.updated_at),
            updated_by: r.updated_by,
        }
    }
}

const SELECT: &str = "SELECT c.name AS category, t.vendor, t.name, t.origin, t.source, t.updated_at, \
     t.updated_by FROM templates t LEFT JOIN categories c ON c.id = t.category_id";

/// The row of a key: `$1` domain, `$2` vendor, `$3` name, `$4` category id or NULL.
const KEY: &str = "domain_id = $1 AND vendor = $2 AND name = $3 AND \
     ((category_id IS NULL AND $4 IS NULL) OR category_id = $4)";

/// `t.category_id` of the key: the category's id, or none for the domain.
async fn category_of(c: &mut Conn, d: DomainId, key: &TemplateKey<'_>) -> Result<Option<i64>> {
    match key.category {
        Some(name) => Ok(Some(id_of(c, d, "category", &CATEGORY, name).await?)),
        None => Ok(None),
    }
}

/// The key in the audit log, with the source's digest rather than the source.
fn audited(d: &StoredTemplate) -> serde_json::Value {
    json!({
        "category": d.category, "vendor": d.vendor, "name": d.name,
        "origin": d.origin, "sha256": digest(&d.source),
    })
}

fn target(key: &TemplateKey<'_>) -> String {
    match key.category {
        Some(c) => format!("{c}:{}/{}", key.vendor, key.name),
        None => format!("{}/{}", key.vendor, key.name),
    }
}

async fn find(c: &mut Conn, d: DomainId, key: &TemplateKey<'_>) -> Result<Option<StoredTemplate>> {
    let category = category_of(c, d, key).await?;
    let row: Option<TemplateRow> = sqlx::query_as(&format!(
        "{SELECT} WHERE t.id = (SELECT id FROM templates WHERE {KEY})"
    ))
    .bind(d.0)
    .bind(key.vendor)
    .bind(key.name)
    .bind(category)
    .fetch_optional(&mut *c)
    .await?;
    Ok(row.map(StoredTemplate::from))
}

/// A device's stored templates: its category's, then its domain's.
pub(super) async fn device_templates(
    c: &mut Conn,
    domain: i64,
    category: Option<i64>,
) -> Result<Vec<DeviceTemplate>> {
    let rows: Vec<(String, String, String, Option<i64>)> = sqlx::query_as(
        "SELECT vendor, name, source, category_id FROM templates WHERE domain_id = $1 \
         AND (category_id IS NULL OR category_id = $2) \
         ORDER BY CASE WHEN category_id IS NULL THEN 1 ELSE 0 END, vendor, name",
    )
    .bind(domain)
    .bind(category)
    .fetch_all(&mut *c)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(vendor, name, source, category)| DeviceTemplate {
            vendor,
            name,
            source,
            from_category: category.is_some(),
        })
        .collect())
}

#[async_trait]
impl TemplateStore for SqlStore {
    async fn put_template(
        &self,
        actor: &Actor,
        d: DomainId,
        key: TemplateKey<'_>,
        origin: TemplateOrigin,
        source: &str,
    ) -> Result<StoredTemplate> {
        let mut tx = self.write().await?;
        let category = category_of(&mut tx, d, &key).await?;
        let before = find(&mut tx, d, &key).await?;
        if before.is_some() {
            sqlx::query(&format!(
                "UPDATE templates SET origin = $5, source = $6, updated_at = $7, updated_by = $8 \
                 WHERE {KEY}"
            ))
            .bind(d.0)
            .bind(key.vendor)
            .bind(key.name)
            .bind(category)
            .bind(origin.as_str())
            .bind(source)
            .bind(now())
            .bind(&actor.0)
            .execute(&mut *tx)
            .await?;
        } else {
            sqlx::query(
                "INSERT INTO templates (domain_id, category_id, vendor, name, origin, source, updated_at, updated_by) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(d.0)
            .bind(category)
            .bind(key.vendor)
            .bind(key.name)
            .bind(origin.as_str())
            .bind(source)
            .bind(now())
            .bind(&actor.0)
            .execute(&mut *tx)
            .await?;
        }
        let stored = find(&mut tx, d, &key)
            .await?
            .ok_or(StoreError::NotFound("template"))?;
        audit(
            &mut tx,
            actor,
            "template.put",
            Some(d),
            &target(&key),
            before.as_ref().map(audited),
            Some(audited(&stored)),
        )
        .await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn template(&self, d: DomainId, key: TemplateKey<'_>) -> Result<StoredTemplate> {
        let mut c = self.pool.acquire().await?;
        find(&mut c, d, &key)
            .await?
            .ok_or(StoreError::NotFound("template"))
    }

    async fn list_templates(&self, d: DomainId) -> Result<Vec<StoredTemplate>> {
        let rows: Vec<TemplateRow> = sqlx::query_as(&format!(
            "{SELECT} WHERE t.domain_id = $1 \
             ORDER BY CASE WHEN c.name IS NULL THEN 0 ELSE 1 END, c.name, t.vendor, t.name"
        ))
        .bind(d.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(StoredTemplate::from).collect())
    }

    async fn delete_template(
        &self,
        actor: &Actor,
        d: DomainId,
        key: TemplateKey<'_>,
    ) -> Result<()> {
        let mut tx = self.write().await?;
        let category = category_of(&mut tx, d, &key).await?;
        let before = find(&mut tx, d, &key)
            .await?
            .ok_or(StoreError::NotFound("template"))?;
        sqlx::query(&format!("DELETE FROM templates WHERE {KEY}"))
            .bind(d.0)
            .bind(key.vendor)
            .bind(key.name)
            .bind(category)
            .execute(&mut *tx)
            .await?;
        audit(
            &mut tx,
            actor,
            "template.delete",
            Some(d),
            &target(&key),
            Some(audited(&before)),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
