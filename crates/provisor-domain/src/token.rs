//! API tokens: 256 random bits shown once, kept only as a SHA-256 digest.

use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::secret::SecretString;

const PREFIX: &str = "pvt_";

/// A newly made token: the secret for its owner, and what the store keeps.
pub struct NewToken {
    pub secret: SecretString,
    pub hash: String,
    /// The first characters of the secret, safe to show in lists so a token can be recognised.
    pub hint: String,
}

pub fn generate() -> NewToken {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    NewToken {
        hash: digest(&secret),
        hint: secret[..PREFIX.len() + 6].to_owned(),
        secret: SecretString::new(secret),
    }
}

/// The stored form of a presented token. Tokens carry 256 bits of entropy, so a fast hash
/// is enough; lookups are by digest, so timing reveals nothing about the secret.
pub fn digest(secret: &str) -> String {
    sha256_hex(secret.as_bytes())
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_hash_to_their_digest() {
        let a = generate();
        let b = generate();
        assert_ne!(a.secret.expose(), b.secret.expose());
        assert_eq!(digest(a.secret.expose()), a.hash);
        assert!(a.secret.expose().starts_with("pvt_"));
        assert!(a.secret.expose().starts_with(&a.hint));
        assert_eq!(a.secret.expose().len(), 4 + 43);
    }
}
