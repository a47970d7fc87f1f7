//! What a template sees. These names are the contract with every template, built-in or
//! written by an operator: change them only with a migration of the templates.

use provisor_domain::catalog::Vendor;
use provisor_domain::phone::PhoneDevice;
use provisor_domain::settings;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::timezone::Time;

/// Everything one file of one device is rendered from.
#[derive(Clone, Debug, Serialize)]
pub struct Context {
    pub device: DeviceInfo,
    /// The device's lines in order, at most as many as its model takes.
    pub lines: Vec<Line>,
    /// The merged settings layers (built-in → vendor → model → domain → category → user → device).
    pub settings: Map<String, Value>,
    pub provisioning: Provisioning,
    /// The `timezone` setting in every vendor's form.
    pub time: Time,
}

#[derive(Clone, Debug, Serialize)]
pub struct DeviceInfo {
    /// Twelve lowercase hex digits.
    pub mac: String,
    /// Twelve uppercase hex digits.
    pub mac_upper: String,
    pub vendor: String,
    pub model: String,
    pub firmware: String,
    /// How many accounts the model takes, and its line keys (0 if unknown).
    pub max_lines: u32,
    pub keys: u32,
    /// The password of the phone's own web interface, generated per device.
    pub admin_password: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Line {
    /// 1-based.
    pub number: u32,
    pub sip_user: String,
    /// The authentication user: the account's, or the SIP user if it has none.
    pub auth_user: String,
    pub password: String,
    pub display_name: String,
    /// The display name split at its first space (for imported templates that ask).
    pub first_name: String,
    pub last_name: String,
    /// Short text for the line key and screen.
    pub label: String,
    pub registrar_host: String,
    pub registrar_port: Option<u16>,
    pub proxy_host: String,
    pub proxy_port: Option<u16>,
    /// `udp`, `tcp` or `tls`.
    pub transport: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Provisioning {
    /// The directory URL the phone fetches its files from, ending in `/`.
    pub url: String,
    /// How often the phone checks for changes, in minutes and in seconds.
    pub recheck_minutes: u32,
    pub recheck_seconds: u64,
    /// The firmware the phone should run, when a software job applies.
    pub firmware_url: Option<String>,
}

impl Provisioning {
    pub fn new(url: String, recheck_minutes: u32, firmware_url: Option<String>) -> Self {
        Provisioning {
            url,
            recheck_minutes,
            recheck_seconds: u64::from(recheck_minutes) * 60,
            firmware_url,
        }
    }
}

/// `Ada Lovelace King` → `Ada`, `Lovelace King`.
fn split_name(name: &str) -> (String, String) {
    match name.trim().split_once(' ') {
        Some((first, last)) => (first.to_owned(), last.trim().to_owned()),
        None => (name.trim().to_owned(), String::new()),
    }
}

/// What secrets are replaced with where the caller may not read them.
pub const MASK: &str = "********";

/// Splits `host[:port]` (`[v6]:port` too) into host and port.
pub fn host_port(value: &str) -> (String, Option<u16>) {
    if let Some((host, tail)) = value
        .strip_prefix('[')
        .and_then(|rest| rest.split_once(']'))
    {
        return (
            host.to_owned(),
            tail.strip_prefix(':').and_then(|p| p.parse().ok()),
        );
    }
    match value.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host.to_owned(), port.parse().ok()),
        _ => (value.to_owned(), None),
    }
}

/// How often phones check for changes unless settings say `recheck_minutes`.
pub const DEFAULT_RECHECK_MINUTES: u32 = 1440;

/// What a request says about the device, with the catalog's word on its model.
#[derive(Clone, Debug, Default)]
pub struct Detected {
    pub vendor: String,
    pub model: String,
    pub firmware: String,
    pub mac: Option<provisor_domain::Mac>,
}

fn device_info(vendor: Option<&Vendor>, d: &Detected, admin_password: String) -> DeviceInfo {
    let model = vendor.and_then(|v| v.models.get(&d.model));
    DeviceInfo {
        mac: d.mac.map(|m| m.to_string()).unwrap_or_default(),
        mac_upper: d.mac.map(|m| m.to_upper()).unwrap_or_default(),
        vendor: d.vendor.clone(),
        model: d.model.clone(),
        firmware: d.firmware.clone(),
        max_lines: model.map_or(0, |m| m.lines),
        keys: model.map_or(0, |m| m.keys),
        admin_password,
    }
}

impl Context {
    /// Everything a known, authenticated device gets: its lines with their passwords, its
    /// merged settings, its admin password. `detected` is the request's view of vendor,
    /// model and firmware, with the device record's filled in where the request says none.
    pub fn for_device(
        phone: &PhoneDevice,
        vendor: Option<&Vendor>,
        detected: &Detected,
        url: String,
    ) -> Context {
        let settings = settings::merge(&phone.layers);
        let default_registrar = settings
            .get("registrar")
            .and_then(Value::as_str)
            .unwrap_or(&phone.domain_name)
            .to_owned();
        let recheck_minutes = settings
            .get("recheck_minutes")
            .and_then(Value::as_u64)
            .and_then(|m| u32::try_from(m).ok())
            .filter(|&m| m > 0)
            .unwrap_or(DEFAULT_RECHECK_MINUTES);
        let lines = phone
            .lines
            .iter()
            .map(|l| {
                let (registrar_host, registrar_port) = host_port(if l.registrar.is_empty() {
                    &default_registrar
                } else {
                    &l.registrar
                });
                let (proxy_host, proxy_port) = host_port(&l.outbound_proxy);
                let display_name = [&l.display_name, &phone.owner_display_name, &l.sip_user]
                    .into_iter()
                    .find(|n| !n.is_empty())
                    .cloned()
                    .unwrap_or_default();
                let (first_name, last_name) = split_name(&display_name);
                Line {
                    number: l.position,
                    first_name,
                    last_name,
                    sip_user: l.sip_user.clone(),
                    auth_user: if l.auth_user.is_empty() {
                        l.sip_user.clone()
                    } else {
                        l.auth_user.clone()
                    },
                    password: l.password.expose().to_owned(),
                    label: display_name.clone(),
                    display_name,
                    registrar_host,
                    registrar_port,
                    proxy_host,
                    proxy_port,
                    transport: l.transport.as_str().to_owned(),
                }
            })
            .collect();
        // A pin or a software job gives the firmware (a firmware store file at the contents
        // the job saw, or an external URL); else a `firmware` setting names an uploaded
        // file. Store files are fetched under the device's URL.
        let firmware_url = match &phone.jobs.firmware {
            Some(offer) => match (&offer.firmware, &offer.sha256, &offer.url) {
                (Some(name), Some(sha), _) => Some(format!("{url}firmware/{name}?sha256={sha}")),
                (Some(name), None, _) => Some(format!("{url}firmware/{name}")),
                (None, _, external) => external.clone(),
            },
            None => settings
                .get("firmware")
                .and_then(Value::as_str)
                .filter(|f| !f.is_empty())
                .map(|f| format!("{url}firmware/{f}")),
        };
        let time = settings
            .get("timezone")
            .and_then(Value::as_str)
            .map(Time::of)
            .unwrap_or_default();
        Context {
            device: device_info(vendor, detected, phone.admin_password.expose().to_owned()),
            lines,
            time,
            settings,
            provisioning: Provisioning::new(url, recheck_minutes, firmware_url),
        }
    }

    /// A file without any device's data or secrets: the vendor's common files, the generic
    /// bootstrap, and the hand-off that moves an armed device to its tokenized `url`.
    pub fn without_secrets(vendor: Option<&Vendor>, detected: &Detected, url: String) -> Context {
        Context {
            device: device_info(vendor, detected, String::new()),
            lines: Vec::new(),
            settings: Map::new(),
            time: Time::default(),
            provisioning: Provisioning::new(url, DEFAULT_RECHECK_MINUTES, None),
        }
    }

    /// Replaces the SIP passwords and the admin password with `MASK`.
    pub fn mask_secrets(&mut self) {
        for line in &mut self.lines {
            line.password = MASK.to_owned();
        }
        if !self.device.admin_password.is_empty() {
            self.device.admin_password = MASK.to_owned();
        }
    }

    /// A device with `lines` lines and typical settings, for previews and tests.
    pub fn sample(vendor: &str, model: &str, lines: u32) -> Context {
        Context {
            device: DeviceInfo {
                mac: "001565aabbcc".into(),
                mac_upper: "001565AABBCC".into(),
                vendor: vendor.into(),
                model: model.into(),
                firmware: String::new(),
                max_lines: 16,
                keys: 10,
                admin_password: "Adm1n-Sample".into(),
            },
            lines: (1..=lines)
                .map(|n| Line {
                    number: n,
                    sip_user: format!("{}", 100 + n),
                    auth_user: format!("{}", 100 + n),
                    password: format!("secret-{n}"),
                    display_name: format!("Line {n}"),
                    first_name: "Line".into(),
                    last_name: format!("{n}"),
                    label: format!("{}", 100 + n),
                    registrar_host: "sip.example.com".into(),
                    registrar_port: None,
                    proxy_host: String::new(),
                    proxy_port: None,
                    transport: "udp".into(),
                })
                .collect(),
            settings: Map::new(),
            time: Time::default(),
            provisioning: Provisioning::new(
                "https://provisor.example.com/p/TOKEN/".into(),
                DEFAULT_RECHECK_MINUTES,
                None,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn splits_hosts_and_ports() {
        assert_eq!(
            host_port("sip.example.com"),
            ("sip.example.com".into(), None)
        );
        assert_eq!(
            host_port("sip.example.com:5061"),
            ("sip.example.com".into(), Some(5061))
        );
        assert_eq!(
            host_port("[2001:db8::1]:5061"),
            ("2001:db8::1".into(), Some(5061))
        );
        assert_eq!(host_port("2001:db8::1"), ("2001:db8::1".into(), None));
    }
}
