//! Secrets at rest: AES-256-GCM with a random 96-bit nonce per value, and a string
//! wrapper that never prints its contents.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, OsRng};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce};
use base64::Engine as _;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;

/// The installation's data key. Cloning shares nothing mutable; the key never prints.
#[derive(Clone)]
pub struct Cipher {
    aead: Aes256Gcm,
    /// For keyed digests (`keyed_digest`), derived from the key.
    mac_key: [u8; 32],
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CipherError {
    #[error("the encryption key must be 32 bytes, written as 64 hex digits or in base64")]
    BadKey,
    #[error(
        "a stored secret could not be decrypted: the encryption key does not match, or the value is damaged"
    )]
    Undecryptable,
}

impl Cipher {
    pub fn from_bytes(key: &[u8; 32]) -> Self {
        use sha2::Digest as _;
        let mut derive = sha2::Sha256::new();
        derive.update(b"provisor keyed digest v1\0");
        derive.update(key);
        Self {
            aead: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key)),
            mac_key: derive.finalize().into(),
        }
    }

    /// Reads a key written as 64 hex digits or as base64 (standard or URL-safe) of 32 bytes.
    pub fn from_text(text: &str) -> Result<Self, CipherError> {
        let text = text.trim();
        let bytes = hex::decode(text)
            .ok()
            .or_else(|| base64::engine::general_purpose::STANDARD.decode(text).ok())
            .or_else(|| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(text)
                    .ok()
            })
            .ok_or(CipherError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| CipherError::BadKey)?;
        Ok(Self::from_bytes(&key))
    }

    /// A fresh key from the OS CSPRNG, as the hex text `from_text` reads.
    pub fn generate_key_text() -> String {
        hex::encode(Aes256Gcm::generate_key(&mut OsRng))
    }

    /// HMAC-SHA256 of `text` under a key derived from the data key, in hex: the stored form
    /// of short secrets (provisioning codes) that a plain hash would not protect, since
    /// all their values can be tried.
    pub fn keyed_digest(&self, text: &str) -> String {
        use hmac::Mac as _;
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(&self.mac_key)
            .expect("HMAC takes any key length");
        mac.update(text.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    pub fn encrypt(&self, plaintext: &str) -> Vec<u8> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = self
            .aead
            .encrypt(&nonce, plaintext.as_bytes())
            .expect("AES-GCM encryption of an in-memory value cannot fail");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    pub fn decrypt(&self, blob: &[u8]) -> Result<SecretString, CipherError> {
        if blob.len() < 1 + NONCE_LEN || blob[0] != VERSION {
            return Err(CipherError::Undecryptable);
        }
        let (nonce, sealed) = blob[1..].split_at(NONCE_LEN);
        let plain = self
            .aead
            .decrypt(Nonce::from_slice(nonce), sealed)
            .map_err(|_| CipherError::Undecryptable)?;
        String::from_utf8(plain)
            .map(SecretString)
            .map_err(|_| CipherError::Undecryptable)
    }
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cipher([redacted])")
    }
}

/// A secret string (password, token, key). `Debug` and `Display` show `[redacted]`;
/// the value is reached only through `expose()`, so every use is greppable.
#[derive(Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl utoipa::PartialSchema for SecretString {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Password,
            )))
            .into()
    }
}

impl utoipa::ToSchema for SecretString {}

/// For `#[serde(serialize_with = "…")]` on the one answer that shows a secret to its owner.
pub fn serialize_exposed<S: serde::Serializer>(
    s: &SecretString,
    ser: S,
) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s.expose())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_fresh_nonces() {
        let c = Cipher::from_text(&Cipher::generate_key_text()).unwrap();
        let a = c.encrypt("s3cr&t<pw>");
        let b = c.encrypt("s3cr&t<pw>");
        assert_ne!(a, b, "each value gets its own nonce");
        assert_eq!(c.decrypt(&a).unwrap().expose(), "s3cr&t<pw>");
    }

    #[test]
    fn wrong_key_or_damage_is_an_error() {
        let c1 = Cipher::from_text(&Cipher::generate_key_text()).unwrap();
        let c2 = Cipher::from_text(&Cipher::generate_key_text()).unwrap();
        let mut blob = c1.encrypt("pw");
        assert_eq!(c2.decrypt(&blob), Err(CipherError::Undecryptable));
        let last = blob.len() - 1;
        blob[last] ^= 1;
        assert_eq!(c1.decrypt(&blob), Err(CipherError::Undecryptable));
        assert_eq!(c1.decrypt(&[]), Err(CipherError::Undecryptable));
    }

    #[test]
    fn key_text_forms() {
        let hex_key = "00".repeat(32);
        assert!(Cipher::from_text(&hex_key).is_ok());
        assert!(
            Cipher::from_text(&base64::engine::general_purpose::STANDARD.encode([7u8; 32])).is_ok()
        );
        assert_eq!(Cipher::from_text("abcd").unwrap_err(), CipherError::BadKey);
    }

    #[test]
    fn secrets_do_not_print() {
        let s = SecretString::new("hunter2");
        assert_eq!(format!("{s:?}"), "[redacted]");
    }
}
