//! The data model shared by the API, the CLI and the stores: what each thing is, what
//! creating or changing one takes, and how each input is validated.
//!
//! Outputs (`Domain`, `User`, …) never carry secrets: SIP passwords and password hashes
//! stay inside the store, so serializing any of these (API answers, audit log) is safe.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::names;
use crate::phone::PhonePolicy;
use crate::secret::SecretString;
use crate::settings::{self, Settings};
use crate::{Invalid, Mac};

pub type Timestamp = DateTime<Utc>;

/// The internal key of a domain. Only the store hands these out, after a lookup that the
/// caller was allowed to make; every tenant-scoped store call takes one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct DomainId(pub i64);

macro_rules! text_enum {
    ($(#[doc = $doc:literal])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[doc = $doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name { $(#[serde(rename = $text)] $variant),+ }

        // By hand: the derive does not see a `serde(rename)` whose text comes from a macro
        // argument, and documented the variants' Rust names instead of their texts.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                let doc = [$($doc),*].map(str::trim).join("\n");
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text),+]))
                    .description((!doc.is_empty()).then_some(doc))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = Invalid;
            fn from_str(s: &str) -> Result<Self, Invalid> {
                let lower = s.trim().to_ascii_lowercase();
                $name::ALL.iter().copied().find(|v| v.as_str() == lower).ok_or_else(|| {
                    let allowed: Vec<&str> = $name::ALL.iter().map(|v| v.as_str()).collect();
                    Invalid::new(stringify!($name).to_ascii_lowercase(), format!("'{s}' is not one of {}", allowed.join(", ")))
                })
            }
        }
    };
}

text_enum! {
    /// SIP transport of an account.
    Transport { Udp = "udp", Tcp = "tcp", Tls = "tls" }
}

text_enum! {
    /// Where a device is in its life: added by an admin, provisioned (it fetched its
    /// configuration), or disabled (it gets nothing).
    DeviceState { Added = "added", Provisioned = "provisioned", Disabled = "disabled" }
}

text_enum! {
    /// What an API token may do: everything (operator) or everything inside one domain.
    Role { Operator = "operator", DomainAdmin = "domain-admin" }
}

// `text_enum!` cannot derive `Default` for only some of its enums.
#[allow(clippy::derivable_impls)]
impl Default for Transport {
    fn default() -> Self {
        Transport::Udp
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Domain {
    pub id: DomainId,
    pub name: String,
    pub description: String,
    #[schema(value_type = Object)]
    pub settings: Settings,
    /// Who may fetch device files, and how new devices are handed their URL.
    pub phone_policy: PhonePolicy,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Category {
    pub id: i64,
    pub name: String,
    /// Offered to users when they request a provisioning code.
    pub provisioning: bool,
    #[schema(value_type = Object)]
    pub settings: Settings,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub email: String,
    pub enabled: bool,
    /// Whether a portal password is set (the hash itself is never returned).
    pub has_password: bool,
    #[schema(value_type = Object)]
    pub settings: Settings,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A SIP account (a line). The password is stored encrypted and never returned here.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct SipAccount {
    pub id: i64,
    /// The user owning this account.
    pub user: String,
    pub sip_user: String,
    /// Authentication user name; empty means the SIP user is used.
    pub auth_user: String,
    pub display_name: String,
    /// Registrar `host[:port]`; empty means the domain's default.
    pub registrar: String,
    pub outbound_proxy: String,
    pub transport: Transport,
    #[schema(value_type = Object)]
    pub options: Settings,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct DeviceLine {
    /// 1-based line key position.
    pub position: u32,
    pub account_id: i64,
    pub sip_user: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Device {
    pub id: i64,
    pub mac: Mac,
    pub vendor: String,
    pub model: String,
    pub firmware: String,
    pub bootcode: String,
    pub state: DeviceState,
    pub category: Option<String>,
    /// The owning user.
    pub user: Option<String>,
    pub lines: Vec<DeviceLine>,
    pub first_contact: Option<DateTime<Utc>>,
    pub last_contact: Option<DateTime<Utc>>,
    pub last_ip: Option<String>,
    #[schema(value_type = Object)]
    pub settings: Settings,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    pub role: Role,
    /// The domain a domain-admin token is limited to.
    pub domain: Option<String>,
    /// The first characters of the token, to recognise it.
    pub hint: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Something that happened in a domain, for the PBX side (webhooks, the event stream).
/// `id` orders a domain's events and is the cursor a subscriber resumes after.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Event {
    pub id: i64,
    pub domain: String,
    /// `device.provisioned`, `device.registered`, `code.expired`, `rollout.completed`.
    pub kind: String,
    pub at: DateTime<Utc>,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

/// A softphone installation: a device of its user (kind softphone).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Install {
    pub id: i64,
    pub user: String,
    /// `sessiontalk`, `acrobits`, `linphone`.
    pub app: String,
    pub install_id: String,
    pub first_contact: DateTime<Utc>,
    pub last_contact: DateTime<Utc>,
    pub last_ip: String,
    pub user_agent: String,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A subscriber that gets a domain's events POSTed, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Webhook {
    pub id: i64,
    pub url: String,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    /// The id of the last event delivered.
    pub cursor: i64,
    /// Failed attempts at the next event, and when the next attempt is due.
    pub failures: u32,
    pub next_attempt_at: DateTime<Utc>,
}

/// One attempt to deliver an event to a webhook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Delivery {
    pub id: i64,
    pub event_id: i64,
    pub attempt: u32,
    pub at: DateTime<Utc>,
    /// The HTTP status the subscriber answered; none if it could not be reached.
    pub status: Option<u16>,
    pub error: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// Who made the change: a token (`token:ID name`), `cli`, or `system`.
    pub actor: String,
    /// What was done, e.g. `device.update`.
    pub action: String,
    pub domain: Option<String>,
    /// The changed object, e.g. a MAC or user name.
    pub target: String,
    #[schema(value_type = Option<Object>)]
    pub before: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub after: Option<serde_json::Value>,
}

/// A firmware image (or other static file) phones fetch under their token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Firmware {
    pub name: String,
    /// Hex SHA-256 of the contents.
    pub sha256: String,
    pub size: u64,
    pub created_at: DateTime<Utc>,
}

/// A firmware file name: letters, digits, `.`, `_`, `-`, at most 128, not starting with `.`.
pub fn firmware_name(name: &str) -> Result<String, Invalid> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(name.to_owned())
    } else {
        Err(Invalid::new(
            "name",
            "a firmware name is 1 to 128 letters, digits, '.', '_' or '-', not starting with '.'",
        ))
    }
}

/// Who is making a change, as the audit log records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor(pub String);

impl Actor {
    pub fn cli() -> Self {
        Actor("cli".into())
    }
    pub fn system() -> Self {
        Actor("system".into())
    }
}

/// Deserializes a field that may be absent (no change), `null` (clear) or a value (set).
pub fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

fn opt_text(field: &str, v: &Option<String>, max: usize) -> Result<Option<String>, Invalid> {
    v.as_deref().map(|s| names::text(field, s, max)).transpose()
}

fn opt_host(field: &str, v: &Option<String>) -> Result<Option<String>, Invalid> {
    v.as_deref()
        .map(|s| {
            if s.trim().is_empty() {
                Ok(String::new())
            } else {
                names::host_port(field, s)
            }
        })
        .transpose()
}

fn opt_settings(v: Option<Settings>) -> Result<Option<Settings>, Invalid> {
    v.map(|m| settings::layer(serde_json::Value::Object(m)))
        .transpose()
}

#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDomain {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub settings: Settings,
    #[serde(default)]
    pub phone_policy: PhonePolicy,
}

impl NewDomain {
    pub fn validate(self) -> Result<Self, Invalid> {
        Ok(Self {
            name: names::domain_name(&self.name)?,
            description: names::text("description", &self.description, 1000)?,
            settings: settings::layer(self.settings.into())?,
            phone_policy: self.phone_policy.validate()?,
        })
    }
}

#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainPatch {
    pub description: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Settings>,
    /// Replaces the whole policy.
    pub phone_policy: Option<PhonePolicy>,
}

impl DomainPatch {
    pub fn validate(self) -> Result<Self, Invalid> {
        Ok(Self {
            description: opt_text("description", &self.description, 1000)?,
            settings: opt_settings(self.settings)?,
            phone_policy: self.phone_policy.map(PhonePolicy::validate).transpose()?,
        })
    }
}

#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCategory {
    pub name: String,
    #[serde(default)]
    pub provisioning: bool,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub settings: Settings,
}

impl NewCategory {
    pub fn validate(self) -> Result<Self, Invalid> {
        Ok(Self {
            name: names::category_name(&self.name)?,
            provisioning: self.provisioning,
            settings: settings::layer(self.settings.into())?,
        })
    }
}

#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryPatch {
    pub name: Option<String>,
    pub provisioning: Option<bool>,
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Settings>,
}

impl CategoryPatch {
    pub fn validate(self) -> Result<Self, Invalid> {
        Ok(Self {
            name: self.name.as_deref().map(names::category_name).transpose()?,
            provisioning: self.provisioning,
            settings: opt_settings(self.settings)?,
        })
    }
}

#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub username: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub email: String,
    /// Portal password (at least 8 characters); without one the user cannot sign in.
    pub password: Option<SecretString>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub settings: Settings,
}

fn yes() -> bool {
    true
}

fn email_or_empty(v: &str) -> Result<String, Invalid> {
    if v.trim().is_empty() {
        Ok(String::new())
    } else {
        names::email(v)
    }
}

impl NewUser {
    pub fn validate(self) -> Result<Self, Invalid> {
        Ok(Self {
            username: names::user_name("username", &self.username)?,
            display_name: names::text("display_name", &self.display_name, 200)?,
            email: email_or_empty(&self.email)?,
            password: self.password.filter(|p| !p.is_empty()),
            enabled: self.enabled,
            settings: settings::layer(self.settings.into())?,
        })
    }
}

#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub password: Option<SecretString>,
    pub enabled: Option<bool>,
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Settings>,
}

impl UserPatch {
    pub fn validate(self) -> Result<Self, Invalid> {
        Ok(Self {
            display_name: opt_text("display_name", &self.display_name, 200)?,
            email: self.email.as_deref().map(email_or_empty).transpose()?,
            password: self.password,
            enabled: self.enabled,
            settings: opt_settings(self.settings)?,
        })
    }
}

#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSipAccount {
    pub sip_user: String,
    #[serde(default)]
    pub auth_user: String,
    pub password: SecretString,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub registrar: String,
    #[serde(default)]
    pub outbound_proxy: String,
    #[serde(default)]
    pub transport: Transport,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub options: Settings,
}

fn sip_password(p: &SecretString) -> Result<(), Invalid> {
    secret_text("password", p)
}

/// A password set by an admin (SIP, innovaphone): 1 to 256 characters, no control
/// characters.
pub fn secret_text(field: &str, p: &SecretString) -> Result<(), Invalid> {
    let pw = p.expose();
    if pw.is_empty() {
        return Err(Invalid::new(field, "must not be empty"));
    }
    if pw.chars().count() > 256 || pw.chars().any(char::is_control) {
        return Err(Invalid::new(
            field,
            "must be at most 256 characters without control characters",
        ));
    }
    Ok(())
}

impl NewSipAccount {
    pub fn validate(self) -> Result<Self, Invalid> {
        sip_password(&self.password)?;
        Ok(Self {
            sip_user: names::user_name("sip_user", &self.sip_user)?,
            auth_user: if self.auth_user.trim().is_empty() {
                String::new()
            } else {
                names::user_name("auth_user", &self.auth_user)?
            },
            password: self.password,
            display_name: names::text("display_name", &self.display_name, 200)?,
            registrar: opt_host("registrar", &Some(self.registrar))?.unwrap_or_default(),
            outbound_proxy: opt_host("outbound_proxy", &Some(self.outbound_proxy))?
                .unwrap_or_default(),
            transport: self.transport,
            options: settings::layer(self.options.into())?,
        })
    }
}

#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SipAccountPatch {
    pub sip_user: Option<String>,
    pub auth_user: Option<String>,
    pub password: Option<SecretString>,
    pub display_name: Option<String>,
    pub registrar: Option<String>,
    pub outbound_proxy: Option<String>,
    pub transport: Option<Transport>,
    #[schema(value_type = Option<Object>)]
    pub options: Option<Settings>,
}

impl SipAccountPatch {
    pub fn validate(self) -> Result<Self, Invalid> {
        if let Some(p) = &self.password {
            sip_password(p)?;
        }
        Ok(Self {
            sip_user: self
                .sip_user
                .as_deref()
                .map(|s| names::user_name("sip_user", s))
                .transpose()?,
            auth_user: self
                .auth_user
                .as_deref()
                .map(|s| {
                    if s.trim().is_empty() {
                        Ok(String::new())
                    } else {
                        names::user_name("auth_user", s)
                    }
                })
                .transpose()?,
            password: self.password,
            display_name: opt_text("display_name", &self.display_name, 200)?,
            registrar: opt_host("registrar", &self.registrar)?,
            outbound_proxy: opt_host("outbound_proxy", &self.outbound_proxy)?,
            transport: self.transport,
            options: opt_settings(self.options)?,
        })
    }
}

#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDevice {
    pub mac: Mac,
    #[serde(default)]
    pub vendor: String,
    #[serde(default)]
    pub model: String,
    pub category: Option<String>,
    /// The owning user's name.
    pub user: Option<String>,
    /// SIP users of the device's lines, in line order.
    #[serde(default)]
    pub lines: Vec<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub settings: Settings,
}

fn lines(v: &[String]) -> Result<Vec<String>, Invalid> {
    if v.len() > 512 {
        return Err(Invalid::new("lines", "a device has at most 512 lines"));
    }
    v.iter().map(|s| names::user_name("lines", s)).collect()
}

fn model_text(field: &str, v: &str) -> Result<String, Invalid> {
    names::text(field, v, 100)
}

impl NewDevice {
    pub fn validate(self) -> Result<Self, Invalid> {
        Ok(Self {
            mac: self.mac,
            vendor: model_text("vendor", &self.vendor)?.to_ascii_lowercase(),
            model: model_text("model", &self.model)?,
            category: self
                .category
                .as_deref()
                .map(names::category_name)
                .transpose()?,
            user: self
                .user
                .as_deref()
                .map(|u| names::user_name("user", u))
                .transpose()?,
            lines: lines(&self.lines)?,
            settings: settings::layer(self.settings.into())?,
        })
    }
}

#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DevicePatch {
    pub vendor: Option<String>,
    pub model: Option<String>,
    /// `null` removes the device from its category.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub category: Option<Option<String>>,
    /// `null` removes the owner.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub user: Option<Option<String>>,
    /// Replaces all lines, in order.
    pub lines: Option<Vec<String>>,
    pub state: Option<DeviceState>,
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Settings>,
}

impl DevicePatch {
    pub fn validate(self) -> Result<Self, Invalid> {
        Ok(Self {
            vendor: self
                .vendor
                .as_deref()
                .map(|v| model_text("vendor", v).map(|v| v.to_ascii_lowercase()))
                .transpose()?,
            model: self
                .model
                .as_deref()
                .map(|v| model_text("model", v))
                .transpose()?,
            category: self
                .category
                .map(|c| c.as_deref().map(names::category_name).transpose())
                .transpose()?,
            user: self
                .user
                .map(|u| {
                    u.as_deref()
                        .map(|u| names::user_name("user", u))
                        .transpose()
                })
                .transpose()?,
            lines: self.lines.as_deref().map(lines).transpose()?,
            state: self.state,
            settings: opt_settings(self.settings)?,
        })
    }
}

#[derive(Clone, Debug, Default, Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeviceFilter {
    /// Exact MAC, in any accepted form.
    pub mac: Option<Mac>,
    /// Owner user name.
    pub user: Option<String>,
    pub category: Option<String>,
    pub state: Option<DeviceState>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn device_patch_tells_absent_from_null() {
        let p: DevicePatch = serde_json::from_value(json!({"category": null})).unwrap();
        assert_eq!(p.category, Some(None));
        assert_eq!(p.user, None);
        let p: DevicePatch = serde_json::from_value(json!({"user": "alice"})).unwrap();
        assert_eq!(p.user, Some(Some("alice".into())));
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(serde_json::from_value::<NewDomain>(json!({"name": "a", "nme": 1})).is_err());
    }

    #[test]
    fn enums_parse_case_insensitively_and_name_the_choices() {
        assert_eq!("TLS".parse::<Transport>().unwrap(), Transport::Tls);
        let e = "sctp".parse::<Transport>().unwrap_err();
        assert!(e.reason.contains("udp, tcp, tls"), "{e}");
        assert_eq!("domain-admin".parse::<Role>().unwrap(), Role::DomainAdmin);
    }

    #[test]
    fn account_validation_names_the_field() {
        let a: NewSipAccount = serde_json::from_value(
            json!({"sip_user": "100", "password": "pw", "registrar": "sip.x:70000"}),
        )
        .unwrap();
        assert_eq!(a.validate().unwrap_err().field, "registrar");
        let a: NewSipAccount =
            serde_json::from_value(json!({"sip_user": "100", "password": ""})).unwrap();
        assert_eq!(a.validate().unwrap_err().field, "password");
    }
}
