//! Update jobs, their per-device progress, and firmware pins.
//!
//! Progress rows exist from a device's first offer on (`offered`, `applied`, `failed`);
//! `pending` is counted, not stored: a device the job targets without a row.

use std::collections::HashMap;

use async_trait::async_trait;
use provisor_domain::Mac;
use provisor_domain::job::{
    FirmwarePin, Job, JobPatch, JobRule, JobSpec, JobState, Payload, Progress, ProgressCounts,
    runs_version,
};
use provisor_domain::model::*;
use provisor_domain::phone::PhonePolicy;
use provisor_store::{JobDevice, JobStore, Result, StoreError};
use serde_json::json;
use sqlx::types::Json;

use super::codes::event;
use super::directory::{CATEGORY, id_of};
use super::{Conn, SqlStore, audit, now, ts};

const JOB_SELECT: &str = "SELECT j.id, j.state, j.category_id, c.name AS category, j.models, j.percent, j.stage_cutoff, j.devices, \
     j.payload, j.max_offers, j.created_at, j.created_by, j.updated_at, j.completed_at \
     FROM jobs j LEFT JOIN categories c ON c.id = j.category_id";

#[derive(sqlx::FromRow)]
struct JobRow {
    id: i64,
    state: String,
    category_id: Option<i64>,
    category: Option<String>,
    models: Json<Vec<String>>,
    percent: i32,
    stage_cutoff: i64,
    devices: Json<Vec<String>>,
    payload: Json<Payload>,
    max_offers: i32,
    created_at: i64,
    created_by: String,
    updated_at: i64,
    completed_at: Option<i64>,
}

impl JobRow {
    fn macs(&self) -> Result<Vec<Mac>> {
        Ok(self
            .devices
            .0
            .iter()
            .map(|m| Mac::parse(m))
            .collect::<Result<_, _>>()?)
    }

    fn rule(&self, progress: Option<(Progress, u32)>) -> Result<JobRule> {
        Ok(JobRule {
            id: self.id,
            state: self.state.parse()?,
            category_id: self.category_id,
            models: self.models.0.clone(),
            cutoff: self.stage_cutoff,
            devices: self.macs()?,
            payload: self.payload.0.clone(),
            max_offers: self.max_offers as u32,
            progress,
        })
    }

    fn job(self) -> Result<Job> {
        Ok(Job {
            id: self.id,
            state: self.state.parse()?,
            devices: self.macs()?,
            category: self.category,
            models: self.models.0,
            payload: self.payload.0,
            percent: self.percent as u8,
            max_offers: self.max_offers as u32,
            created_at: ts(self.created_at),
            created_by: self.created_by,
            updated_at: ts(self.updated_at),
            completed_at: self.completed_at.map(ts),
        })
    }
}

/// The jobs a device of this domain and category may get, with its progress on each.
pub(super) async fn rules_for(
    c: &mut Conn,
    domain_id: i64,
    category_id: Option<i64>,
    device_id: i64,
) -> Result<Vec<JobRule>> {
    let rows: Vec<JobRow> = sqlx::query_as(&format!(
        "{JOB_SELECT} WHERE j.domain_id = $1 AND j.state <> 'cancelled' \
         AND (j.category_id IS NULL OR j.category_id = $2) ORDER BY j.id"
    ))
    .bind(domain_id)
    .bind(category_id)
    .fetch_all(&mut *c)
    .await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let progress: Vec<(i64, String, i32)> =
        sqlx::query_as("SELECT job_id, state, offers FROM job_progress WHERE device_id = $1")
            .bind(device_id)
            .fetch_all(&mut *c)
            .await?;
    let mut by_job = HashMap::new();
    for (job, state, offers) in progress {
        by_job.insert(job, (state.parse::<Progress>()?, offers as u32));
    }
    rows.iter()
        .map(|r| r.rule(by_job.get(&r.id).copied()))
        .collect()
}

/// The MACs of the devices a job of this scope matches now (for its stage).
async fn matching(
    c: &mut Conn,
    d: DomainId,
    category_id: Option<i64>,
    models: &[String],
) -> Result<Vec<Mac>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT mac, model FROM devices WHERE domain_id = $1 AND ($2 OR category_id = $3)",
    )
    .bind(d.0)
    .bind(category_id.is_none())
    .bind(category_id.unwrap_or(0))
    .fetch_all(&mut *c)
    .await?;
    rows.into_iter()
        .filter(|(_, model)| provisor_domain::job::for_model(models, model))
        .map(|(mac, _)| Ok(Mac::parse(&mac)?))
        .collect()
}

async fn job_row(c: &mut Conn, d: DomainId, id: i64) -> Result<JobRow> {
    sqlx::query_as(&format!(
        "{JOB_SELECT} WHERE j.domain_id = $1 AND j.id = $2"
    ))
    .bind(d.0)
    .bind(id)
    .fetch_optional(&mut *c)
    .await?
    .ok_or(StoreError::NotFound("job"))
}

/// Devices by progress, as the phones see it now: a device whose files would carry the job
/// (by `select`, with the domain's other jobs, its progress and its pin) is pending without
/// a row, offered with one; applied and failed are rows; an offered device whose files no
/// longer carry the job (a newer job, a pin, another category) is superseded.
async fn counts(c: &mut Conn, d: DomainId, row: &JobRow) -> Result<ProgressCounts> {
    /// id, MAC, model, category, pin.
    type DeviceRow = (i64, String, String, Option<i64>, Option<Json<FirmwarePin>>);
    let devices: Vec<DeviceRow> = sqlx::query_as(
        "SELECT id, mac, model, category_id, firmware_pin FROM devices \
             WHERE domain_id = $1 AND ($2 OR category_id = $3)",
    )
    .bind(d.0)
    .bind(row.category_id.is_none())
    .bind(row.category_id.unwrap_or(0))
    .fetch_all(&mut *c)
    .await?;
    let jobs: Vec<JobRow> = sqlx::query_as(&format!(
        "{JOB_SELECT} WHERE j.domain_id = $1 AND j.state <> 'cancelled' ORDER BY j.id"
    ))
    .bind(d.0)
    .fetch_all(&mut *c)
    .await?;
    let progress: Vec<(i64, i64, String, i32)> = sqlx::query_as(
        "SELECT p.job_id, p.device_id, p.state, p.offers FROM job_progress p \
         JOIN jobs j ON j.id = p.job_id WHERE j.domain_id = $1 AND j.state <> 'cancelled'",
    )
    .bind(d.0)
    .fetch_all(&mut *c)
    .await?;
    let mut by_device: HashMap<i64, HashMap<i64, (Progress, u32)>> = HashMap::new();
    for (job, device, state, offers) in progress {
        by_device
            .entry(device)
            .or_default()
            .insert(job, (state.parse()?, offers as u32));
    }
    let mut out = ProgressCounts::default();
    for (id, mac, model, category, pin) in devices {
        let mine = by_device.remove(&id).unwrap_or_default();
        let state = mine.get(&row.id).map(|p| p.0);
        match state {
            Some(Progress::Applied) => out.applied += 1,
            Some(Progress::Failed) => out.failed += 1,
            Some(Progress::Offered) | Some(Progress::Pending) | None => {
                let rules = jobs
                    .iter()
                    .filter(|j| j.category_id.is_none() || j.category_id == category)
                    .map(|j| j.rule(mine.get(&j.id).copied()))
                    .collect::<Result<Vec<_>>>()?;
                let plan = provisor_domain::job::plan(
                    &rules,
                    pin.as_ref().map(|p| &p.0),
                    Mac::parse(&mac)?,
                    &model,
                    category,
                );
                let carried = plan.jobs.contains(&row.id);
                match (state, carried) {
                    (Some(_), true) => out.offered += 1,
                    (Some(_), false) => out.superseded += 1,
                    (None, true) => out.pending += 1,
                    (None, false) => {}
                }
            }
        }
    }
    Ok(out)
}

/// Marks an active job completed (and writes `job.completed`, once) when no device is
/// pending or offered.
async fn complete_if_done(c: &mut Conn, d: DomainId, job: i64) -> Result<()> {
    let row = job_row(c, d, job).await?;
    if row.completed_at.is_some() || row.state != "active" {
        return Ok(());
    }
    let n = counts(c, d, &row).await?;
    if n.pending > 0 || n.offered > 0 {
        return Ok(());
    }
    let done =
        sqlx::query("UPDATE jobs SET completed_at = $1 WHERE id = $2 AND completed_at IS NULL")
            .bind(now())
            .bind(job)
            .execute(&mut *c)
            .await?;
    if done.rows_affected() == 1 {
        event(
            c,
            d,
            "job.completed",
            json!({"job_id": job, "applied": n.applied, "failed": n.failed}),
        )
        .await?;
    }
    Ok(())
}

/// A device's check-in: it got a file carrying `jobs` and reported `firmware` (empty: the
/// version its record has). First offer: a row; a later check-in (outside the domain's
/// check-in window from the last one counted): one more offer, or applied (a software job
/// when it reports the target version, a config job when it comes back for its file); a
/// software job whose device comes back after `max_offers` offers still without it: failed
/// (`job.failed`, once). Written so that two writers (nodes) at once count each step once.
pub(super) async fn checked_in(
    c: &mut Conn,
    device_id: i64,
    jobs: &[i64],
    firmware: &str,
    at: i64,
) -> Result<()> {
    for &job in jobs {
        #[allow(clippy::type_complexity)]
        let found: Option<(i64, Json<Payload>, i32, String, String, Json<PhonePolicy>)> =
            sqlx::query_as(
                "SELECT j.domain_id, j.payload, j.max_offers, d.mac, d.firmware, dm.phone_policy \
                 FROM jobs j JOIN devices d ON d.id = $2 JOIN domains dm ON dm.id = j.domain_id \
                 WHERE j.id = $1 AND j.domain_id = d.domain_id",
            )
            .bind(job)
            .bind(device_id)
            .fetch_optional(&mut *c)
            .await?;
        let Some((domain, payload, max_offers, mac, stored, policy)) = found else {
            continue;
        };
        let d = DomainId(domain);
        let reported = if firmware.is_empty() {
            stored.as_str()
        } else {
            firmware
        };
        let target = match &payload.0 {
            Payload::Software { version, .. } => Some(version.as_str()),
            Payload::Config { .. } => None,
        };
        let runs = target.is_some_and(|v| runs_version(reported, v));
        let first = if runs { "applied" } else { "offered" };
        let inserted = sqlx::query(
            "INSERT INTO job_progress (job_id, device_id, state, offers, first_offered, last_offered, done_at) \
             VALUES ($1, $2, $3, 1, $4, $4, $5) ON CONFLICT (job_id, device_id) DO NOTHING",
        )
        .bind(job)
        .bind(device_id)
        .bind(first)
        .bind(at)
        .bind(runs.then_some(at))
        .execute(&mut *c)
        .await?;
        if inserted.rows_affected() == 1 {
            if runs {
                complete_if_done(c, d, job).await?;
            }
            continue;
        }
        let window = i64::from(policy.0.check_in_seconds) * 1000;
        // One more check-in, counted once: only the writer that moves `last_offered` on.
        let moved: Option<(String, i32)> = sqlx::query_as(
            "UPDATE job_progress SET offers = offers + 1, last_offered = $3 \
             WHERE job_id = $1 AND device_id = $2 AND last_offered <= $4 RETURNING state, offers",
        )
        .bind(job)
        .bind(device_id)
        .bind(at)
        .bind(at - window.max(1))
        .fetch_optional(&mut *c)
        .await?;
        let Some((state, offers)) = moved else {
            // Within the window (or counted by another writer): nothing new.
            if runs {
                applied(c, d, job, device_id, at).await?;
            }
            continue;
        };
        let state: Progress = state.parse()?;
        // This check-in's fetch shows what the previous offers did.
        let before = offers - 1;
        if runs || (target.is_none() && state == Progress::Offered) {
            applied(c, d, job, device_id, at).await?;
        } else if target.is_some()
            && state == Progress::Offered
            && before >= max_offers
            && !reported.is_empty()
        {
            let failed = sqlx::query(
                "UPDATE job_progress SET state = 'failed', done_at = $3 \
                 WHERE job_id = $1 AND device_id = $2 AND state = 'offered'",
            )
            .bind(job)
            .bind(device_id)
            .bind(at)
            .execute(&mut *c)
            .await?;
            if failed.rows_affected() == 1 {
                event(
                    c,
                    d,
                    "job.failed",
                    json!({"job_id": job, "mac": mac, "offers": before}),
                )
                .await?;
                complete_if_done(c, d, job).await?;
            }
        }
    }
    Ok(())
}

/// Marks the device's progress applied (once) and completes the job if that was the last.
async fn applied(c: &mut Conn, d: DomainId, job: i64, device_id: i64, at: i64) -> Result<()> {
    let done = sqlx::query(
        "UPDATE job_progress SET state = 'applied', done_at = $3 \
         WHERE job_id = $1 AND device_id = $2 AND state <> 'applied'",
    )
    .bind(job)
    .bind(device_id)
    .bind(at)
    .execute(&mut *c)
    .await?;
    if done.rows_affected() == 1 {
        complete_if_done(c, d, job).await?;
    }
    Ok(())
}

#[async_trait]
impl JobStore for SqlStore {
    async fn create_job(&self, actor: &Actor, d: DomainId, spec: &JobSpec) -> Result<Job> {
        let mut tx = self.write().await?;
        let category = match &spec.category {
            Some(name) => Some(id_of(&mut tx, d, "category", &CATEGORY, name).await?),
            None => None,
        };
        let mut payload = spec.payload.clone();
        let (kind, sha) = match &mut payload {
            Payload::Software {
                firmware: Some(name),
                sha256,
                ..
            } => {
                let digest: String =
                    sqlx::query_scalar("SELECT sha256 FROM firmware WHERE name = $1")
                        .bind(&*name)
                        .fetch_optional(&mut *tx)
                        .await?
                        .ok_or_else(|| {
                            provisor_domain::Invalid::new(
                                "firmware",
                                format!("there is no firmware file '{name}'; upload it first"),
                            )
                        })?;
                *sha256 = Some(digest.clone());
                ("software", Some(digest))
            }
            Payload::Software { .. } => ("software", None),
            Payload::Config { .. } => ("config", None),
        };
        let t = now();
        let devices: Vec<String> = spec.devices.iter().map(Mac::to_string).collect();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO jobs (domain_id, kind, category_id, models, percent, stage_cutoff, devices, payload, \
             firmware_sha256, max_offers, created_at, created_by, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8, $9, $10, $11, $10) RETURNING id",
        )
        .bind(d.0)
        .bind(kind)
        .bind(category)
        .bind(Json(&spec.models))
        .bind(i32::from(spec.percent))
        .bind(Json(&devices))
        .bind(Json(&payload))
        .bind(sha)
        .bind(spec.max_offers as i32)
        .bind(t)
        .bind(&actor.0)
        .fetch_one(&mut *tx)
        .await?;
        // The stage needs the id (positions are per job).
        let macs = matching(&mut tx, d, category, &spec.models).await?;
        sqlx::query("UPDATE jobs SET stage_cutoff = $1 WHERE id = $2")
            .bind(provisor_domain::job::cutoff(id, spec.percent, &macs))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let job = job_row(&mut tx, d, id).await?.job()?;
        audit(
            &mut tx,
            actor,
            "job.create",
            Some(d),
            &format!("job {id}"),
            None,
            Some(super::json(&job)),
        )
        .await?;
        tx.commit().await?;
        Ok(job)
    }

    async fn list_jobs(&self, d: DomainId) -> Result<Vec<(Job, ProgressCounts)>> {
        let mut c = self.pool.acquire().await?;
        let rows: Vec<JobRow> = sqlx::query_as(&format!(
            "{JOB_SELECT} WHERE j.domain_id = $1 ORDER BY j.id DESC LIMIT 1000"
        ))
        .bind(d.0)
        .fetch_all(&mut *c)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let n = counts(&mut c, d, &row).await?;
            out.push((row.job()?, n));
        }
        Ok(out)
    }

    async fn job(&self, d: DomainId, id: i64) -> Result<(Job, ProgressCounts)> {
        let mut c = self.pool.acquire().await?;
        let row = job_row(&mut c, d, id).await?;
        let n = counts(&mut c, d, &row).await?;
        Ok((row.job()?, n))
    }

    async fn job_devices(&self, d: DomainId, id: i64) -> Result<Vec<JobDevice>> {
        let mut c = self.pool.acquire().await?;
        job_row(&mut c, d, id).await?;
        let rows: Vec<(String, String, i32, i64, i64, Option<i64>)> = sqlx::query_as(
            "SELECT d.mac, p.state, p.offers, p.first_offered, p.last_offered, p.done_at \
             FROM job_progress p JOIN devices d ON d.id = p.device_id \
             WHERE p.job_id = $1 AND d.domain_id = $2 ORDER BY d.mac LIMIT 10000",
        )
        .bind(id)
        .bind(d.0)
        .fetch_all(&mut *c)
        .await?;
        rows.into_iter()
            .map(|(mac, state, offers, first, last, done)| {
                Ok(JobDevice {
                    mac: Mac::parse(&mac)?,
                    state: state.parse()?,
                    offers: offers as u32,
                    first_offered: ts(first),
                    last_offered: ts(last),
                    done_at: done.map(ts),
                })
            })
            .collect()
    }

    async fn update_job(
        &self,
        actor: &Actor,
        d: DomainId,
        id: i64,
        patch: &JobPatch,
    ) -> Result<Job> {
        let mut tx = self.write().await?;
        let row = job_row(&mut tx, d, id).await?;
        let cutoff = match patch.percent {
            Some(p) => {
                let macs = matching(&mut tx, d, row.category_id, &row.models.0).await?;
                let fresh = provisor_domain::job::cutoff(id, p, &macs);
                // Raising never takes a device out, lowering never lets one in (the
                // population may have changed); the same share changes nothing.
                match i32::from(p).cmp(&row.percent) {
                    std::cmp::Ordering::Greater => fresh.max(row.stage_cutoff),
                    std::cmp::Ordering::Less => fresh.min(row.stage_cutoff),
                    std::cmp::Ordering::Equal => row.stage_cutoff,
                }
            }
            None => row.stage_cutoff,
        };
        let before = row.job()?;
        if before.state == JobState::Cancelled {
            return Err(StoreError::Conflict(format!(
                "job {id} is cancelled; make a new one"
            )));
        }
        if patch.percent.is_some() && !before.devices.is_empty() {
            return Err(provisor_domain::Invalid::new(
                "percent",
                "this job is for a list of devices, not a share",
            )
            .into());
        }
        sqlx::query(
            "UPDATE jobs SET state = $1, percent = $2, stage_cutoff = $6, updated_at = $3, \
             completed_at = CASE WHEN $4 THEN NULL ELSE completed_at END WHERE id = $5",
        )
        .bind(patch.state.unwrap_or(before.state).as_str())
        .bind(i32::from(patch.percent.unwrap_or(before.percent)))
        .bind(now())
        // A larger share, or a resumed job, may have devices pending again.
        .bind(
            patch.percent.is_some_and(|p| p > before.percent)
                || (patch.state == Some(JobState::Active) && before.state == JobState::Paused),
        )
        .bind(id)
        .bind(cutoff)
        .execute(&mut *tx)
        .await?;
        let after = job_row(&mut tx, d, id).await?.job()?;
        audit(
            &mut tx,
            actor,
            "job.update",
            Some(d),
            &format!("job {id}"),
            Some(super::json(&before)),
            Some(super::json(&after)),
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    async fn set_firmware_pin(
        &self,
        actor: &Actor,
        d: DomainId,
        mac: Mac,
        pin: Option<&FirmwarePin>,
    ) -> Result<()> {
        let mut tx = self.write().await?;
        let done = sqlx::query(
            "UPDATE devices SET firmware_pin = $1, updated_at = $2 WHERE domain_id = $3 AND mac = $4",
        )
        .bind(pin.map(Json))
        .bind(now())
        .bind(d.0)
        .bind(mac.to_string())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("device"));
        }
        audit(
            &mut tx,
            actor,
            "device.firmware_pin",
            Some(d),
            &mac.to_string(),
            None,
            Some(json!({"pin": pin})),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn firmware_pin(&self, d: DomainId, mac: Mac) -> Result<Option<FirmwarePin>> {
        let pin: Option<Option<Json<FirmwarePin>>> = sqlx::query_scalar(
            "SELECT firmware_pin FROM devices WHERE domain_id = $1 AND mac = $2",
        )
        .bind(d.0)
        .bind(mac.to_string())
        .fetch_optional(&self.pool)
        .await?;
        Ok(pin.ok_or(StoreError::NotFound("device"))?.map(|p| p.0))
    }
}
