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
