//! What a phone's fetch is judged by: each domain's policy for who may fetch device files,
//! the per-device secrets made when a device is added, and the device as the phone routes
//! see it (lines with their passwords, settings layers), from which its files are rendered.

use std::net::IpAddr;

use base64::Engine as _;
use ipnet::IpNet;
use rand::RngCore;
use rand::distributions::{Alphanumeric, DistString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Mac;
use crate::model::{DeviceState, DomainId, Timestamp, Transport};
use crate::secret::SecretString;
use crate::settings::Settings;

/// How the devices of one domain prove who they are when they fetch device files. Common
/// files (the same for every device) need no proof; everything device-specific does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PhonePolicy {
    /// The per-device URL token (`/p/{token}/{file}`) is accepted.
    pub token: bool,
    /// HTTP digest with the device's MAC as user name and its fetch password is accepted.
    pub digest: bool,
    /// Over HTTPS, a client certificate (verified against the installation's CA bundle)
    /// naming the device's MAC is accepted.
    pub client_cert: bool,
    /// If not empty, device files go only to requests from these networks (CIDR), whatever
    /// else the request proves.
    #[schema(value_type = Vec<String>)]
    pub networks: Vec<IpNet>,
    /// A request from `networks` needs no other proof (for closed networks only).
    pub networks_suffice: bool,
    /// How long a newly added (or re-armed) device may fetch once without credentials, to be
    /// handed its tokenized URL.
    pub arm_minutes: u32,
    /// How long a device's previous URL token keeps working after it is rotated.
    pub token_grace_minutes: u32,
    /// Record unknown MACs fetching from `networks` as unassigned, for an admin to claim.
    pub record_unassigned: bool,
    /// How long a provisioning code is valid, in seconds (at least 1).
    pub code_seconds: u32,
    /// How long a rollout's codes are valid, in seconds (1 to 365 days; 7 days by default).
    pub rollout_seconds: u32,
    /// Update jobs: fetches within this many seconds of the last one are one check-in (a
    /// boot sequence fetches several files), counted as one offer.
    pub check_in_seconds: u32,
}

impl Default for PhonePolicy {
    fn default() -> Self {
        Self {
            token: true,
            digest: false,
            client_cert: false,
            networks: Vec::new(),
            networks_suffice: false,
            arm_minutes: 60,
            token_grace_minutes: 24 * 60,
            record_unassigned: false,
            code_seconds: 600,
            rollout_seconds: 7 * 86_400,
            check_in_seconds: 60,
        }
    }
}

impl PhonePolicy {
    /// Longest arming window and token grace: 30 days.
    pub const MAX_MINUTES: u32 = 30 * 24 * 60;

    pub fn validate(self) -> Result<Self, crate::Invalid> {
        let minutes = |field: &str, v: u32| {
            if v > Self::MAX_MINUTES {
                Err(crate::Invalid::new(
                    format!("phone_policy.{field}"),
                    format!("must be at most {} (30 days)", Self::MAX_MINUTES),
                ))
            } else {
                Ok(v)
            }
        };
        minutes("arm_minutes", self.arm_minutes)?;
        minutes("token_grace_minutes", self.token_grace_minutes)?;
        if self.check_in_seconds > 86_400 {
            return Err(crate::Invalid::new(
                "phone_policy.check_in_seconds",
                "must be at most 86400 (a day)",
            ));
        }
        if !(1..=365 * 86_400).contains(&self.rollout_seconds) {
            return Err(crate::Invalid::new(
                "phone_policy.rollout_seconds",
                "must be 1 second to 365 days",
            ));
        }
        if self.code_seconds == 0 || self.code_seconds > Self::MAX_MINUTES * 60 {
            return Err(crate::Invalid::new(
                "phone_policy.code_seconds",
                "must be 1 second to 30 days",
            ));
        }
        if self.networks.len() > 256 {
            return Err(crate::Invalid::new(
                "phone_policy.networks",
                "at most 256 networks",
            ));
        }
        if self.networks_suffice && self.networks.is_empty() {
            return Err(crate::Invalid::new(
                "phone_policy.networks_suffice",
                "needs at least one network",
            ));
        }
        if self.record_unassigned && self.networks.is_empty() {
            return Err(crate::Invalid::new(
                "phone_policy.record_unassigned",
                "needs the networks the domain's phones fetch from",
            ));
        }
        Ok(Self {
            networks: self.networks.iter().map(IpNet::trunc).collect(),
            ..self
        })
    }

    /// Whether `ip` is in one of the policy's networks (IPv4-mapped IPv6 counts as IPv4).
    pub fn in_networks(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        self.networks.iter().any(|n| n.contains(&ip))
    }

    /// Whether the networks allow a request from `ip` at all.
    pub fn network_allows(&self, ip: IpAddr) -> bool {
        self.networks.is_empty() || self.in_networks(ip)
    }
}

/// `::ffff:a.b.c.d` as `a.b.c.d`, so one IPv4 network matches either form.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The secrets a device gets when it is added: its URL token, the password of its own web
/// interface, and its password for HTTP digest.
pub struct DeviceSecrets {
    pub token: SecretString,
    pub admin_password: SecretString,
    pub fetch_password: SecretString,
}

impl DeviceSecrets {
    pub fn generate() -> Self {
        Self {
            token: new_url_token(),
            admin_password: random_password(16),
            fetch_password: random_password(24),
        }
    }
}

/// 192 random bits, URL-safe: the path segment of a device's provisioning URL.
pub fn new_url_token() -> SecretString {
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    SecretString::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Letters and digits only: every vendor's web interface and file format takes them.
pub fn random_password(len: usize) -> SecretString {
    SecretString::new(Alphanumeric.sample_string(&mut rand::rngs::OsRng, len))
}

/// Whether `text` has the shape of a URL token (so anything else is refused unlooked-up).
pub fn looks_like_token(text: &str) -> bool {
    text.len() == 32
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The directory URL a device fetches its files from: `{public}{base}/{token}/`.
pub fn provisioning_url(public_url: &str, base_path: &str, token: &str) -> String {
    format!("{}{}/{token}/", public_url.trim_end_matches('/'), base_path)
}

/// One line of a device as its files need it, password decrypted.
#[derive(Clone, Debug)]
pub struct PhoneLine {
    pub position: u32,
    pub sip_user: String,
    pub auth_user: String,
    pub password: SecretString,
    pub display_name: String,
    pub registrar: String,
    pub outbound_proxy: String,
    pub transport: Transport,
}

/// A device as the phone routes see it: everything its files are rendered from.
#[derive(Clone, Debug)]
pub struct PhoneDevice {
    pub id: i64,
    pub domain: DomainId,
    pub domain_name: String,
    pub mac: Mac,
    pub vendor: String,
    pub model: String,
    pub firmware: String,
    pub state: DeviceState,
    pub policy: PhonePolicy,
    /// The owner's display name, for lines that have none.
    pub owner_display_name: String,
    pub lines: Vec<PhoneLine>,
    /// Settings layers lowest first: domain, category, update jobs, user, device.
    pub layers: Vec<Settings>,
    pub token: SecretString,
    pub admin_password: SecretString,
    pub fetch_password: SecretString,
    pub armed_until: Option<Timestamp>,
    /// Its category's and domain's stored templates, the category's first.
    pub templates: Vec<crate::template::DeviceTemplate>,
    /// What its update jobs (and a firmware pin) give it; the config jobs' settings are a
    /// layer of `layers`, after the category's.
    pub jobs: crate::job::Plan,
}

impl PhoneDevice {
    /// The stored template that replaces `vendor`'s `template` for this device, if any.
    pub fn template(
        &self,
        vendor: &str,
        template: &str,
    ) -> Option<&crate::template::DeviceTemplate> {
        self.templates
            .iter()
            .find(|t| t.vendor == vendor && t.name == template)
    }

    pub fn is_armed(&self, now: Timestamp) -> bool {
        self.armed_until.is_some_and(|t| t > now)
    }
}

/// What the installation answers a fetch of a device file that proves nothing, whether or
/// not the MAC is known.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unauthenticated {
    /// An empty 404, as for a file that does not exist.
    #[default]
    NotFound,
    /// The vendor's generic file, without any device's data or secrets.
    Bootstrap,
    /// 401 with an HTTP digest challenge, for phones that then send their credentials.
    Challenge,
    /// 401 asking for a provisioning code (HTTP Basic, the code as password): a live code
    /// binds a MAC that belongs to no device yet, and the request gets its file.
    CodePrompt,
}

/// A fetch to remember: a device's contact, or an unknown MAC seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contact {
    pub mac: Mac,
    /// The known device, if the fetch was authenticated as it.
    pub device_id: Option<i64>,
    /// The update jobs the file it got carried.
    pub jobs: Vec<i64>,
    pub vendor: String,
    pub model: String,
    pub firmware: String,
    pub ip: IpAddr,
    pub at: Timestamp,
    /// It fetched a device file (so it is provisioned).
    pub provisioned: bool,
}

/// A device file refused, to be listed with the device whose MAC it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub mac: Mac,
    pub at: Timestamp,
    pub ip: IpAddr,
    pub file: String,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn policy_defaults_parse_and_validate() {
        let p: PhonePolicy = serde_json::from_value(json!({})).unwrap();
        assert_eq!(p, PhonePolicy::default());
        let p: PhonePolicy =
            serde_json::from_value(json!({"networks": ["10.1.2.3/8", "2001:db8::1/32"]})).unwrap();
        let p = p.validate().unwrap();
        assert_eq!(p.networks[0].to_string(), "10.0.0.0/8");
        assert!(p.in_networks("10.200.0.1".parse().unwrap()));
        assert!(p.in_networks("::ffff:10.0.0.9".parse().unwrap()));
        assert!(p.in_networks("2001:db8:ffff::1".parse().unwrap()));
        assert!(!p.in_networks("192.168.1.1".parse().unwrap()));
        assert!(PhonePolicy::default().network_allows("192.168.1.1".parse().unwrap()));
        assert!(
            serde_json::from_value::<PhonePolicy>(json!({"networks": ["10.0.0.0/33"]})).is_err()
        );
        assert!(serde_json::from_value::<PhonePolicy>(json!({"tokn": true})).is_err());
        let e = PhonePolicy {
            record_unassigned: true,
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.field, "phone_policy.record_unassigned");
        let e = PhonePolicy {
            arm_minutes: PhonePolicy::MAX_MINUTES + 1,
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.field, "phone_policy.arm_minutes");
    }

    #[test]
    fn secrets_are_fresh_and_tokens_have_their_shape() {
        let a = DeviceSecrets::generate();
        let b = DeviceSecrets::generate();
        assert_ne!(a.token.expose(), b.token.expose());
        assert!(looks_like_token(a.token.expose()), "{}", a.token.expose());
        assert!(!looks_like_token("short"));
        assert!(!looks_like_token(&"a/".repeat(16)));
        assert_eq!(a.admin_password.expose().len(), 16);
        assert!(
            a.fetch_password
                .expose()
                .chars()
                .all(|c| c.is_ascii_alphanumeric())
        );
        assert_eq!(
            provisioning_url("http://h:8080/", "/p", "TOK"),
            "http://h:8080/p/TOK/"
        );
    }
}
