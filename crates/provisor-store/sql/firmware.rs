//! The firmware index.

use async_trait::async_trait;
use provisor_domain::model::{Actor, Firmware};
use provisor_store::{FirmwareStore, Result, StoreError};

use super::{Conn, SqlStore, audit, json, now, ts};

#[derive(sqlx::FromRow)]
struct FirmwareRow {
    name: String,
    sha256: String,
    size: i64,
    created_at: i64,
}

impl From<FirmwareRow> for Firmware {
    fn from(r: FirmwareRow) -> Self {
        Firmware {
            name: r.name,
            sha256: r.sha256,
            size: r.size.max(0) as u64,
            created_at: ts(r.created_at),
        }
    }
}

const COLS: &str = "name, sha256, size, created_at";

/// What still refers to these contents: names, and jobs that are not cancelled (which
/// serve them as they were when the job was made).
async fn users_of(c: &mut Conn, sha256: &str) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM firmware WHERE sha256 = $1) + \
         (SELECT COUNT(*) FROM jobs WHERE firmware_sha256 = $1 AND state <> 'cancelled')",
    )
    .bind(sha256)
    .fetch_one(&mut *c)
    .await?)
}

#[async_trait]
impl FirmwareStore for SqlStore {
    async fn put_firmware(
        &self,
        actor: &Actor,
        name: &str,
        sha256: &str,
        size: u64,
    ) -> Result<(Firmware, Option<String>)> {
        let mut tx = self.write().await?;
        let before: Option<String> =
            sqlx::query_scalar("SELECT sha256 FROM firmware WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        let row: FirmwareRow = sqlx::query_as(&format!(
            "INSERT INTO firmware (name, sha256, size, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET sha256 = excluded.sha256, size = excluded.size, \
             created_at = excluded.created_at RETURNING {COLS}"
        ))
        .bind(name)
        .bind(sha256)
        .bind(i64::try_from(size).unwrap_or(i64::MAX))
        .bind(now())
        .fetch_one(&mut *tx)
        .await?;
        let firmware = Firmware::from(row);
        audit(
            &mut tx,
            actor,
            "firmware.put",
            None,
            name,
            None,
            Some(json(&firmware)),
        )
        .await?;
        // The replaced contents are the caller's to remove if nothing else uses them.
        let orphan = match before.filter(|b| b != sha256) {
            Some(b) => {
                let used = users_of(&mut tx, &b).await?;
                (used == 0).then_some(b)
            }
            None => None,
        };
        tx.commit().await?;
        Ok((firmware, orphan))
    }

    async fn firmware(&self, name: &str) -> Result<Firmware> {
        sqlx::query_as::<_, FirmwareRow>(&format!("SELECT {COLS} FROM firmware WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .map(Firmware::from)
            .ok_or(StoreError::NotFound("firmware"))
    }

    async fn list_firmware(&self) -> Result<Vec<Firmware>> {
        let rows: Vec<FirmwareRow> =
            sqlx::query_as(&format!("SELECT {COLS} FROM firmware ORDER BY name"))
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(Firmware::from).collect())
    }

    async fn delete_firmware(&self, actor: &Actor, name: &str) -> Result<Option<String>> {
        let mut tx = self.write().await?;
        let row: FirmwareRow = sqlx::query_as(&format!(
            "DELETE FROM firmware WHERE name = $1 RETURNING {COLS}"
        ))
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound("firmware"))?;
        let used = users_of(&mut tx, &row.sha256).await?;
        let firmware = Firmware::from(row);
        audit(
            &mut tx,
            actor,
            "firmware.delete",
            None,
            name,
            Some(json(&firmware)),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok((used == 0).then_some(firmware.sha256))
    }
}
