//! Portal passwords, hashed with argon2id in PHC string form.

use argon2::Argon2;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};

use crate::Invalid;
use crate::secret::SecretString;

pub const MIN_LEN: usize = 8;

/// Checks a new portal password against the installation's rules, then hashes it.
/// Hashing is deliberately slow: call it off the async executor.
pub fn hash(password: &SecretString) -> Result<String, Invalid> {
    let len = password.expose().chars().count();
    if len < MIN_LEN {
        return Err(Invalid::new(
            "password",
            format!("must be at least {MIN_LEN} characters"),
        ));
    }
    if len > 1024 {
        return Err(Invalid::new("password", "must be at most 1024 characters"));
    }
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.expose().as_bytes(), &salt)
        .expect("argon2id with default parameters accepts any password")
        .to_string())
}

/// True if `password` matches the stored PHC `hash`. A malformed hash never matches.
pub fn verify(password: &SecretString, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.expose().as_bytes(), &parsed)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_with_argon2id_and_verifies() {
        let pw = SecretString::new("correct horse");
        let h = hash(&pw).unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify(&pw, &h));
        assert!(!verify(&SecretString::new("wrong horse"), &h));
        assert!(!verify(&pw, "not a hash"));
    }

    #[test]
    fn short_passwords_are_refused() {
        assert_eq!(
            hash(&SecretString::new("short")).unwrap_err().field,
            "password"
        );
    }
}
