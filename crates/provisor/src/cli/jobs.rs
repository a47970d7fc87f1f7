//! `provisor job …`: update jobs (firmware and configuration rollouts) and their progress,
//! made and checked exactly as the API does.

use clap::Subcommand;
use provisor_domain::job::{Job, JobPatch, JobState, NewJob, ProgressCounts};
use provisor_store::Store;
use serde_json::{Value, json};

use super::{Output, actor, domain};

// Parsed once per process: the size of the one large variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum JobCmd {
    /// Make a job: `--kind software` with `--firmware NAME` (a firmware store file) or
    /// `--url URL`, and `--version`; or `--kind config` with `--type` (ntp, timezone,
    /// language, codecs, dial_plan, custom) and `--param key=value`.
    Create {
        #[arg(long)]
        domain: String,
        #[arg(long)]
        kind: String,
        /// The category (absent: every device of the domain).
        #[arg(long)]
        category: Option<String>,
        /// Only this model (repeatable).
        #[arg(long = "model")]
        models: Vec<String>,
        #[arg(long)]
        firmware: Option<String>,
        #[arg(long)]
        url: Option<String>,
        #[arg(long)]
        version: Option<String>,
        #[arg(long = "type")]
        config_type: Option<String>,
        /// key=value (repeatable); for codecs a comma-separated list; for custom a JSON
        /// value where it parses as one.
        #[arg(long = "param")]
        params: Vec<String>,
        /// The share of matching devices, 1 to 100.
        #[arg(long)]
        percent: Option<u8>,
        /// Exactly these devices instead of a share (repeatable).
        #[arg(long = "device")]
        devices: Vec<String>,
        #[arg(long)]
        max_offers: Option<u32>,
    },
    /// The domain's jobs, newest first, with their progress.
    List {
        #[arg(long)]
        domain: String,
    },
    /// One job with its progress (and, with --devices, each device's).
    Show {
        #[arg(long)]
        domain: String,
        id: i64,
        #[arg(long)]
        devices: bool,
    },
    /// Stop offering the job to devices that do not have it yet.
    Pause {
        #[arg(long)]
        domain: String,
        id: i64,
    },
    Resume {
        #[arg(long)]
        domain: String,
        id: i64,
    },
    /// End the job for good: devices fall back to the previous matching job.
    Cancel {
        #[arg(long)]
        domain: String,
        id: i64,
    },
    /// Change the share of devices it is for.
    Percent {
        #[arg(long)]
        domain: String,
        id: i64,
        percent: u8,
    },
}

fn line(job: &Job, p: &ProgressCounts) -> String {
    format!(
        "job {} {} {}: pending {}, offered {}, applied {}, failed {}",
        job.id,
        job.state,
        job.category.as_deref().unwrap_or("(all categories)"),
        p.pending,
        p.offered,
        p.applied,
        p.failed
    )
}

fn params(config_type: Option<&str>, given: &[String]) -> anyhow::Result<Value> {
    Ok(provisor_domain::job::params_of(
        config_type,
        given.iter().map(String::as_str),
    )?)
}

pub async fn job(store: &dyn Store, cmd: JobCmd, out: &Output) -> anyhow::Result<()> {
    let actor = actor();
    let (dn, id, patch) = match cmd {
        JobCmd::Create {
            domain: dn,
            kind,
            category,
            models,
            firmware,
            url,
            version,
            config_type,
            params: given,
            percent,
            devices,
            max_offers,
        } => {
            let d = domain(store, &dn).await?;
            let new: NewJob = serde_json::from_value(json!({
                "kind": kind, "category": category, "models": models, "firmware": firmware,
                "url": url, "version": version, "config_type": config_type,
                "params": params(config_type.as_deref(), &given)?, "percent": percent,
                "devices": devices, "max_offers": max_offers,
            }))?;
            let job = store.create_job(&actor, d, &new.validate()?).await?;
            let (job, p) = store.job(d, job.id).await?;
            return out.show(&json!({"job": job, "progress": p}), || line(&job, &p));
        }
        JobCmd::List { domain: dn } => {
            let d = domain(store, &dn).await?;
            let jobs = store.list_jobs(d).await?;
            let view: Vec<Value> = jobs
                .iter()
                .map(|(j, p)| json!({"job": j, "progress": p}))
                .collect();
            return out.show(&view, || {
                jobs.iter()
                    .map(|(j, p)| line(j, p))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        JobCmd::Show {
            domain: dn,
            id,
            devices,
        } => {
            let d = domain(store, &dn).await?;
            let (job, p) = store.job(d, id).await?;
            let list = if devices {
                store.job_devices(d, id).await?
            } else {
                Vec::new()
            };
            return out.show(&json!({"job": job, "progress": p, "devices": list}), || {
                let mut text = line(&job, &p);
                for dev in &list {
                    text.push_str(&format!(
                        "\n{} {} ({} offers)",
                        dev.mac, dev.state, dev.offers
                    ));
                }
                text
            });
        }
        JobCmd::Pause { domain, id } => (domain, id, state(JobState::Paused)),
        JobCmd::Resume { domain, id } => (domain, id, state(JobState::Active)),
        JobCmd::Cancel { domain, id } => (domain, id, state(JobState::Cancelled)),
        JobCmd::Percent {
            domain,
            id,
            percent,
        } => (
            domain,
            id,
            JobPatch {
                state: None,
                percent: Some(percent),
            },
        ),
    };
    let d = domain(store, &dn).await?;
    store.update_job(&actor, d, id, &patch.validate()?).await?;
    let (job, p) = store.job(d, id).await?;
    out.show(&json!({"job": job, "progress": p}), || line(&job, &p))
}

fn state(s: JobState) -> JobPatch {
    JobPatch {
        state: Some(s),
        percent: None,
    }
}
