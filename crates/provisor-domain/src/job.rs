//! Update jobs: firmware (software) and configuration changes for a domain's devices,
//! applied when they check in. A job keeps a snapshot of its payload as it was at creation;
//! which job a device gets is decided here, from the jobs and the device alone (no I/O).
//!
//! Selection, for one device: among its domain's jobs whose category (none: every
//! category) and models (none: every model) match it and that target it (an explicit
//! device list, or the stage: `percent` of the devices it matches, taken in the order of
//! a hash of job and MAC, so raising the percentage only adds devices, and a device once
//! offered stays in), the newest active software job, and the
//! newest active config job of each type. A paused job is kept by the devices it was
//! already offered to and offered to no one else; a cancelled one is gone, so devices fall
//! back to the previous match. A device pinned to a firmware gets that and no software job.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use utoipa::ToSchema;

use crate::settings::{self, Settings};
use crate::{Invalid, Mac, names};

text_enum! {
    /// Firmware, or configuration.
    JobKind { Software = "software", Config = "config" }
}

text_enum! {
    /// What a config job changes; the newest job of each type applies.
    ConfigType { Ntp = "ntp", Timezone = "timezone", Language = "language", Codecs = "codecs", DialPlan = "dial_plan", Custom = "custom" }
}

text_enum! {
    /// Active jobs are offered; paused ones only to devices that already have them;
    /// cancelled ones to no one.
    JobState { Active = "active", Paused = "paused", Cancelled = "cancelled" }
}

text_enum! {
    /// A device's progress with a job.
    Progress { Pending = "pending", Offered = "offered", Applied = "applied", Failed = "failed" }
}

/// How often a software job is offered without the device applying it before it counts as
/// failed, unless the job says otherwise.
pub const DEFAULT_MAX_OFFERS: u32 = 3;
/// Most devices an explicit list may name.
pub const MAX_LISTED: usize = 10_000;

/// A job as an admin asks for it.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewJob {
    pub kind: JobKind,
    /// The category whose devices it is for; absent: every device of the domain.
    pub category: Option<String>,
    /// Only these models (as devices report them, any case); empty: every model.
    #[serde(default)]
    pub models: Vec<String>,
    /// Software: a file of the firmware store, by name (its contents are kept as they
    /// are now) …
    pub firmware: Option<String>,
    /// … or an external URL.
    pub url: Option<String>,
    /// Software: the version a device reports once it runs the firmware.
    pub version: Option<String>,
    /// Config: what it changes, and the values.
    pub config_type: Option<ConfigType>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub params: Settings,
    /// The share of matching devices it is for (1 to 100, default 100).
    pub percent: Option<u8>,
    /// Instead of a share: exactly these devices (MACs).
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub devices: Vec<Mac>,
    /// Software: offers without the device applying it before it counts as failed.
    pub max_offers: Option<u32>,
}

/// What a job delivers, as it was when the job was made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Payload {
    Software {
        /// A firmware store file: its name, and the digest of its contents then.
        firmware: Option<String>,
        sha256: Option<String>,
        url: Option<String>,
        version: String,
    },
    Config {
        config_type: ConfigType,
        /// The settings layer it puts on top of the category's.
        #[schema(value_type = Object)]
        settings: Settings,
    },
}

/// A validated job, before the store fills in a firmware file's digest.
#[derive(Clone, Debug)]
pub struct JobSpec {
    pub category: Option<String>,
    pub models: Vec<String>,
    pub payload: Payload,
    pub percent: u8,
    pub devices: Vec<Mac>,
    pub max_offers: u32,
}

fn text(field: &str, v: &serde_json::Value) -> Result<String, Invalid> {
    match v.as_str() {
        Some(s) if !s.trim().is_empty() => names::text(field, s, 200),
        _ => Err(Invalid::new(field, "must be a non-empty string")),
    }
}

/// The settings a config job of `kind` sets, from its parameters.
fn config_settings(kind: ConfigType, params: &Settings) -> Result<Settings, Invalid> {
    let one = |param: &str, key: &str| -> Result<Settings, Invalid> {
        let v = params.get(param).ok_or_else(|| {
            Invalid::new(
                format!("params.{param}"),
                "is required for this config type",
            )
        })?;
        if params.len() != 1 {
            return Err(Invalid::new(
                "params",
                format!("takes only '{param}' for this config type"),
            ));
        }
        let mut s = Settings::new();
        s.insert(key.to_owned(), text(&format!("params.{param}"), v)?.into());
        Ok(s)
    };
    match kind {
        ConfigType::Ntp => {
            let s = one("server", "ntp_server")?;
            names::host_port("params.server", s["ntp_server"].as_str().unwrap_or(""))?;
            Ok(s)
        }
        ConfigType::Timezone => one("timezone", "timezone"),
        ConfigType::Language => one("language", "language"),
        ConfigType::DialPlan => one("dial_plan", "dial_plan"),
        ConfigType::Codecs => {
            let list = params
                .get("codecs")
                .and_then(serde_json::Value::as_array)
                .filter(|l| !l.is_empty() && l.len() <= 16 && params.len() == 1)
                .ok_or_else(|| {
                    Invalid::new("params.codecs", "must be a list of 1 to 16 codec names")
                })?;
            let codecs = list
                .iter()
                .map(|c| {
                    let name = text("params.codecs", c)?.to_ascii_uppercase();
                    if name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                    {
                        Ok(serde_json::Value::String(name))
                    } else {
                        Err(Invalid::new(
                            "params.codecs",
                            format!("'{name}' is not a codec name"),
                        ))
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            let mut s = Settings::new();
            s.insert("codecs".into(), codecs.into());
            Ok(s)
        }
        ConfigType::Custom => {
            if params.is_empty() {
                return Err(Invalid::new("params", "must set at least one setting"));
            }
            settings::layer(serde_json::Value::Object(params.clone()))
        }
    }
}

/// A firmware to give devices: a firmware store file *or* an http(s) URL, and the version
/// devices report once they run it.
fn firmware_source(
    firmware: Option<&str>,
    url: Option<&str>,
    version: Option<&str>,
) -> Result<(Option<String>, Option<String>, String), Invalid> {
    let version = version
        .map(|v| names::text("version", v, 100))
        .transpose()?
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Invalid::new("version", "is required for a software job"))?;
    let url = match url.map(str::trim) {
        Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
            if u.len() > 2000 || u.chars().any(|c| c.is_control() || c == ' ') {
                return Err(Invalid::new("url", "is not a URL"));
            }
            Some(u.to_owned())
        }
        Some(_) => return Err(Invalid::new("url", "must be an http:// or https:// URL")),
        None => None,
    };
    let firmware = firmware.map(crate::model::firmware_name).transpose()?;
    if firmware.is_some() == url.is_some() {
        return Err(Invalid::new(
            "firmware",
            "a software job needs either a firmware file or a url",
        ));
    }
    Ok((firmware, url, version))
}

impl NewJob {
    pub fn validate(self) -> Result<JobSpec, Invalid> {
        let payload = match self.kind {
            JobKind::Software => {
                if self.config_type.is_some() || !self.params.is_empty() {
                    return Err(Invalid::new(
                        "config_type",
                        "belongs to config jobs, not software jobs",
                    ));
                }
                let (firmware, url, version) = firmware_source(
                    self.firmware.as_deref(),
                    self.url.as_deref(),
                    self.version.as_deref(),
                )?;
                Payload::Software {
                    firmware,
                    sha256: None,
                    url,
                    version,
                }
            }
            JobKind::Config => {
                if self.firmware.is_some() || self.url.is_some() || self.version.is_some() {
                    return Err(Invalid::new(
                        "firmware",
                        "belongs to software jobs, not config jobs",
                    ));
                }
                let config_type = self
                    .config_type
                    .ok_or_else(|| Invalid::new("config_type", "is required for a config job"))?;
                Payload::Config {
                    config_type,
                    settings: config_settings(config_type, &self.params)?,
                }
            }
        };
        let percent = self.percent.unwrap_or(100);
        if !(1..=100).contains(&percent) {
            return Err(Invalid::new("percent", "must be 1 to 100"));
        }
        if self.devices.len() > MAX_LISTED {
            return Err(Invalid::new(
                "devices",
                format!("at most {MAX_LISTED} devices"),
            ));
        }
        if !self.devices.is_empty() && self.percent.is_some() {
            return Err(Invalid::new(
                "percent",
                "a job is for a share of devices or for a list, not both",
            ));
        }
        let mut devices = self.devices;
        devices.sort();
        devices.dedup();
        Ok(JobSpec {
            category: self
                .category
                .as_deref()
                .map(names::category_name)
                .transpose()?,
            models: self
                .models
                .iter()
                .map(|m| names::text("models", m, 100).map(|m| m.to_ascii_lowercase()))
                .filter(|m| !matches!(m, Ok(m) if m.is_empty()))
                .collect::<Result<_, _>>()?,
            payload,
            percent,
            devices,
            max_offers: self.max_offers.unwrap_or(DEFAULT_MAX_OFFERS).clamp(1, 100),
        })
    }
}

/// A job as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Job {
    pub id: i64,
    pub state: JobState,
    pub category: Option<String>,
    pub models: Vec<String>,
    pub payload: Payload,
    pub percent: u8,
    #[schema(value_type = Vec<String>)]
    pub devices: Vec<Mac>,
    pub max_offers: u32,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub created_by: String,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    /// When every device it was for had applied it (or failed).
    pub completed_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Devices by progress.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct ProgressCounts {
    /// Devices whose files would carry the job, not yet offered it.
    pub pending: u64,
    /// Offered, not yet applied, and still carried.
    pub offered: u64,
    pub applied: u64,
    pub failed: u64,
    /// Offered, but their files no longer carry it (a newer job, a pin, another category).
    pub superseded: u64,
}

/// A change of a job: pause, resume, cancel, or raise (or lower) its share.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobPatch {
    pub state: Option<JobState>,
    pub percent: Option<u8>,
}

impl JobPatch {
    pub fn validate(self) -> Result<Self, Invalid> {
        if self.percent.is_some_and(|p| !(1..=100).contains(&p)) {
            return Err(Invalid::new("percent", "must be 1 to 100"));
        }
        Ok(self)
    }
}

/// A device pinned to a firmware: it gets this and no software job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FirmwarePin {
    /// A firmware store file (served by its current contents) …
    pub firmware: Option<String>,
    /// … or an external URL.
    pub url: Option<String>,
    pub version: String,
}

impl FirmwarePin {
    pub fn validate(self) -> Result<Self, Invalid> {
        let (firmware, url, version) = firmware_source(
            self.firmware.as_deref(),
            self.url.as_deref(),
            Some(&self.version),
        )?;
        Ok(Self {
            firmware,
            url,
            version,
        })
    }
}

/// What selection needs of a job (the store loads the device's domain's jobs).
#[derive(Clone, Debug)]
pub struct JobRule {
    pub id: i64,
    pub state: JobState,
    pub category_id: Option<i64>,
    pub models: Vec<String>,
    /// The stage (see `cutoff`).
    pub cutoff: i64,
    pub devices: Vec<Mac>,
    pub payload: Payload,
    pub max_offers: u32,
    /// This device's progress with it, if any.
    pub progress: Option<(Progress, u32)>,
}

/// Whether a job for `models` (none: every model) is for a device of `model`.
pub fn for_model(models: &[String], model: &str) -> bool {
    models.is_empty() || models.iter().any(|m| m.eq_ignore_ascii_case(model))
}

/// A device's stable position for job `id` (0 to `i64::MAX`), from a hash of job and MAC.
pub fn position(id: i64, mac: Mac) -> i64 {
    let h = Sha256::digest(format!("{id}:{mac}").as_bytes());
    (u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]) >> 1) as i64
}

/// The stage of a share: devices whose position is below the cutoff are in. With the
/// devices it matches now, the cutoff takes `percent` of them exactly (rounded); with none,
/// the same share of all positions. 100 % takes everyone, also devices added later.
pub fn cutoff(id: i64, percent: u8, matching: &[Mac]) -> i64 {
    if percent >= 100 {
        return i64::MAX;
    }
    if matching.is_empty() {
        return (i64::MAX / 100) * i64::from(percent);
    }
    let mut positions: Vec<i64> = matching.iter().map(|m| position(id, *m)).collect();
    positions.sort_unstable();
    let take = (positions.len() * usize::from(percent) + 50) / 100;
    match take {
        0 => 0,
        n => positions[n - 1] + 1,
    }
}

impl JobRule {
    /// Whether the job is for devices like this one (category and model).
    fn in_scope(&self, model: &str, category_id: Option<i64>) -> bool {
        (self.category_id.is_none() || self.category_id == category_id)
            && for_model(&self.models, model)
    }

    fn had(&self) -> bool {
        matches!(
            self.progress,
            Some((Progress::Offered | Progress::Applied | Progress::Failed, _))
        )
    }

    /// Whether the job is for this device: in scope, and on the list, or in the stage (or
    /// offered it already: a smaller share takes nothing back).
    pub fn targets(&self, mac: Mac, model: &str, category_id: Option<i64>) -> bool {
        self.in_scope(model, category_id)
            && if self.devices.is_empty() {
                self.had() || position(self.id, mac) < self.cutoff
            } else {
                self.devices.binary_search(&mac).is_ok()
            }
    }

    /// Whether the device gets it now: active, or paused and already offered to it.
    fn offered_to(&self, mac: Mac, model: &str, category_id: Option<i64>) -> bool {
        match self.state {
            JobState::Active => self.targets(mac, model, category_id),
            JobState::Paused => self.had() && self.targets(mac, model, category_id),
            JobState::Cancelled => false,
        }
    }
}

/// The jobs a device gets: the software job, and the config job of each type.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Selected {
    pub software: Option<i64>,
    pub config: Vec<i64>,
}

/// Picks a device's jobs from its domain's (`rules` in any order; the newest has the
/// highest id). `pinned`: the device is pinned to a firmware, so no software job.
pub fn select(
    rules: &[JobRule],
    mac: Mac,
    model: &str,
    category_id: Option<i64>,
    pinned: bool,
) -> Selected {
    let mut software: Option<&JobRule> = None;
    let mut config: HashMap<ConfigType, &JobRule> = HashMap::new();
    for r in rules
        .iter()
        .filter(|r| r.offered_to(mac, model, category_id))
    {
        match &r.payload {
            Payload::Software { .. } if !pinned => {
                if software.is_none_or(|s| s.id < r.id) {
                    software = Some(r);
                }
            }
            Payload::Software { .. } => {}
            Payload::Config { config_type, .. } => {
                let slot = config.entry(*config_type).or_insert(r);
                if slot.id < r.id {
                    *slot = r;
                }
            }
        }
    }
    let mut config: Vec<i64> = config.values().map(|r| r.id).collect();
    config.sort_unstable();
    Selected {
        software: software.map(|r| r.id),
        config,
    }
}

/// The settings layer of the config jobs among `jobs` (a plan's), oldest type first (types
/// do not overlap, except `custom`, which is applied last).
pub fn config_layer<'a>(rules: &'a [JobRule], jobs: &[i64]) -> Settings {
    let mut chosen: Vec<&'a JobRule> = rules
        .iter()
        .filter(|r| jobs.contains(&r.id) && matches!(r.payload, Payload::Config { .. }))
        .collect();
    chosen.sort_by_key(|r| {
        (
            matches!(
                r.payload,
                Payload::Config {
                    config_type: ConfigType::Custom,
                    ..
                }
            ),
            r.id,
        )
    });
    let mut out = Settings::new();
    for r in chosen {
        if let Payload::Config { settings: s, .. } = &r.payload {
            settings::merge_into(&mut out, s);
        }
    }
    out
}

/// The firmware a device is given: a firmware store file (at the contents the job saw,
/// where it is a job's) or an external URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirmwareOffer {
    pub firmware: Option<String>,
    pub sha256: Option<String>,
    pub url: Option<String>,
    pub version: String,
}

/// What the jobs come to for one device.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// The jobs its files carry now (their settings: `config_layer`).
    pub jobs: Vec<i64>,
    pub firmware: Option<FirmwareOffer>,
}

/// The jobs of a device: selection and the firmware (a pin first).
pub fn plan(
    rules: &[JobRule],
    pin: Option<&FirmwarePin>,
    mac: Mac,
    model: &str,
    category_id: Option<i64>,
) -> Plan {
    let selected = select(rules, mac, model, category_id, pin.is_some());
    let software = selected
        .software
        .and_then(|id| rules.iter().find(|r| r.id == id));
    let firmware = match (pin, software.map(|r| &r.payload)) {
        (Some(p), _) => Some(FirmwareOffer {
            firmware: p.firmware.clone(),
            sha256: None,
            url: p.url.clone(),
            version: p.version.clone(),
        }),
        (
            None,
            Some(Payload::Software {
                firmware,
                sha256,
                url,
                version,
            }),
        ) => Some(FirmwareOffer {
            firmware: firmware.clone(),
            sha256: sha256.clone(),
            url: url.clone(),
            version: version.clone(),
        }),
        _ => None,
    };
    let mut jobs: Vec<i64> = selected.software.into_iter().collect();
    jobs.extend(&selected.config);
    Plan { jobs, firmware }
}

/// Whether a firmware version a device reports is the job's target (compared without
/// case and surrounding space).
pub fn runs_version(reported: &str, target: &str) -> bool {
    !target.trim().is_empty() && reported.trim().eq_ignore_ascii_case(target.trim())
}

#[cfg(test)]
mod tests;

/// A configuration job's parameters from `key=value` pairs, as the CLI and the console take
/// them: for `codecs` a comma-separated list, for `custom` a JSON value where one parses.
pub fn params_of<'a>(
    config_type: Option<&str>,
    pairs: impl IntoIterator<Item = &'a str>,
) -> Result<serde_json::Value, Invalid> {
    let mut out = serde_json::Map::new();
    for p in pairs {
        let Some((k, v)) = p.split_once('=') else {
            return Err(Invalid::new(
                "params",
                format!("takes key=value, not '{p}'"),
            ));
        };
        let (k, v) = (k.trim(), v.trim());
        let value = match config_type {
            Some("codecs") => serde_json::json!(v.split(',').map(str::trim).collect::<Vec<_>>()),
            Some("custom") => serde_json::from_str(v).unwrap_or_else(|_| serde_json::json!(v)),
            _ => serde_json::json!(v),
        };
        out.insert(k.to_owned(), value);
    }
    Ok(serde_json::Value::Object(out))
}
