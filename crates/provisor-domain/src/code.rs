//! Provisioning codes: twelve digits from the OS CSPRNG with no structure, typed on a
//! phone's keypad to make the phone its user's. Stored only as a keyed digest
//! (`Cipher::keyed_digest`), single use, valid for the domain's `code_minutes`.

use std::net::IpAddr;

use rand::Rng as _;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::mac::Mac;
use crate::secret::SecretString;

pub const DIGITS: usize = 12;

/// A new code, uniform over all 10^12 values.
pub fn generate() -> SecretString {
    let n: u64 = rand::rngs::OsRng.gen_range(0..1_000_000_000_000);
    SecretString::new(format!("{n:012}"))
}

/// The code as typed: twelve digits, with spaces, dashes or dots between groups allowed.
pub fn normalize(typed: &str) -> Option<String> {
    let digits: String = typed
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.'))
        .collect();
    (digits.len() == DIGITS && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// A code as its requester gets it, once.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct IssuedCode {
    #[schema(value_type = String)]
    #[serde(serialize_with = "crate::secret::serialize_exposed")]
    pub code: SecretString,
    pub valid_until: chrono::DateTime<chrono::Utc>,
    pub category: Option<String>,
    pub user: String,
}

/// What a phone (or script) tells when it redeems a code.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct Redemption {
    pub mac: Mac,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub firmware: String,
    #[serde(default)]
    pub bootcode: String,
    /// The address the device says it has.
    #[serde(default, rename = "ip")]
    pub reported_ip: String,
    /// Where the request came from (set by the server, not the caller).
    #[serde(skip)]
    #[schema(ignore)]
    pub ip: Option<IpAddr>,
    /// The vendor, where the server recognised the phone.
    #[serde(skip)]
    #[schema(ignore)]
    pub vendor: String,
    /// Only a code of this domain (where the phone came through a domain's own endpoint).
    #[serde(skip)]
    #[schema(ignore)]
    pub within: Option<crate::model::DomainId>,
    /// An innovaphone sysclient joining: its password and what it reported, kept with the
    /// new device in the same transaction.
    #[serde(skip)]
    #[schema(ignore)]
    pub sysclient: Option<crate::innovaphone::SysclientJoin>,
}

impl Redemption {
    /// A redemption for `mac` that tells nothing else.
    pub fn new(mac: Mac) -> Self {
        Self {
            mac,
            model: String::new(),
            firmware: String::new(),
            bootcode: String::new(),
            reported_ip: String::new(),
            ip: None,
            vendor: String::new(),
            within: None,
            sysclient: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_twelve_digits_and_typed_loosely() {
        let a = generate();
        assert_eq!(normalize(a.expose()).as_deref(), Some(a.expose()));
        assert_ne!(a.expose(), generate().expose());
        assert_eq!(normalize("1234 5678-9012").as_deref(), Some("123456789012"));
        assert_eq!(normalize("12345678901"), None);
        assert_eq!(normalize("1234567890123"), None);
        assert_eq!(normalize("12345678901a"), None);
        assert_eq!(normalize("１２３４５６７８９０１２"), None);
    }
}

/// Where a rollout's code stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CodeState {
    Pending,
    Registered,
    Expired,
}

impl CodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            CodeState::Pending => "Pending",
            CodeState::Registered => "Registered",
            CodeState::Expired => "Expired",
        }
    }
}

/// A rollout: one code per user, for phones of one category.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Rollout {
    pub id: i64,
    pub category: Option<String>,
    /// The phone (template or kind) the rollout is for, as the admin named it.
    pub phone: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub created_by: String,
    pub valid_until: chrono::DateTime<chrono::Utc>,
    pub completed_at: Option<chrono::DateTime<chrono::Utc>>,
    pub pending: u64,
    pub registered: u64,
    pub expired: u64,
}

/// One user of a rollout, with their code and its state.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RolloutEntry {
    pub user: String,
    pub display_name: String,
    #[schema(value_type = String)]
    #[serde(serialize_with = "crate::secret::serialize_exposed")]
    pub code: SecretString,
    pub valid_until: chrono::DateTime<chrono::Utc>,
    pub state: CodeState,
    pub mac: Option<Mac>,
    pub registered_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A rollout's list as RFC 4180 CSV (CRLF line ends, quoting as needed), every cell
/// spreadsheet-safe.
pub fn rollout_csv(entries: &[RolloutEntry]) -> Vec<u8> {
    let mut w = ::csv::WriterBuilder::new()
        .terminator(::csv::Terminator::CRLF)
        .from_writer(Vec::new());
    let _ = w.write_record([
        "user",
        "display_name",
        "code",
        "valid_until",
        "state",
        "mac",
    ]);
    for e in entries {
        let valid_until = e
            .valid_until
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mac = e.mac.map(|m| m.to_string()).unwrap_or_default();
        let cells = [
            e.user.as_str(),
            e.display_name.as_str(),
            e.code.expose(),
            valid_until.as_str(),
            e.state.as_str(),
            mac.as_str(),
        ];
        let _ = w.write_record(
            cells
                .iter()
                .map(|c| crate::csv::spreadsheet_safe(c).into_owned()),
        );
    }
    w.into_inner().unwrap_or_default()
}

#[cfg(test)]
mod csv_tests {
    use super::*;

    #[test]
    fn csv_is_rfc4180_and_formula_safe() {
        let entry = RolloutEntry {
            user: "alice".into(),
            display_name: "=HYPERLINK(\"x\"), \"Al\"".into(),
            code: SecretString::new("012345678901"),
            valid_until: chrono::DateTime::from_timestamp(0, 0).unwrap(),
            state: CodeState::Pending,
            mac: None,
            registered_at: None,
        };
        let text = String::from_utf8(rollout_csv(&[entry])).unwrap();
        assert_eq!(
            text,
            "user,display_name,code,valid_until,state,mac\r\n\
             alice,\"'=HYPERLINK(\"\"x\"\"), \"\"Al\"\"\",012345678901,1970-01-01T00:00:00Z,Pending,\r\n"
        );
    }
}
