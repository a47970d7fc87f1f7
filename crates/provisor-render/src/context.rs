//! What a template sees. These names are the contract with every template, built-in or
//! written by an operator: change them only with a migration of the templates.

use serde::Serialize;
use serde_json::{Map, Value};

/// Everything one file of one device is rendered from.
#[derive(Clone, Debug, Serialize)]
pub struct Context {
    pub device: DeviceInfo,
    /// The device's lines in order, at most as many as its model takes.
    pub lines: Vec<Line>,
    /// The merged settings layers (built-in → vendor → model → domain → category → user → device).
    pub settings: Map<String, Value>,
    pub provisioning: Provisioning,
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
    /// How often the phone checks for changes.
    pub recheck_minutes: u32,
    /// The firmware the phone should run, when a software job applies.
    pub firmware_url: Option<String>,
}

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

impl Context {
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
                    label: format!("{}", 100 + n),
                    registrar_host: "sip.example.com".into(),
                    registrar_port: None,
                    proxy_host: String::new(),
                    proxy_port: None,
                    transport: "udp".into(),
                })
                .collect(),
            settings: Map::new(),
            provisioning: Provisioning {
                url: "https://provisor.example.com/p/TOKEN/".into(),
                recheck_minutes: 1440,
                firmware_url: None,
            },
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
