//! Password hashing with argon2id, off the async threads and bounded by [`Hashing`].

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use ticketing_common::ApiError;

use crate::guard::Hashing;

/// A hash of a password nobody has, verified when the email is unknown so that an unknown
/// email and a wrong password take the same time.
fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let secret = format!("decoy-{}", ticketing_core::Id::new());
        Argon2::default()
            .hash_password(secret.as_bytes())
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// Hashes a password (argon2id, a random salt) into a PHC string.
pub async fn hash(hashing: &Hashing, password: String) -> Result<String, ApiError> {
    hashing
        .run(move || {
            Argon2::default()
                .hash_password(password.as_bytes())
                .map(|hash| hash.to_string())
                .map_err(|e| ApiError::internal(anyhow::anyhow!("hashing failed: {e}")))
        })
        .await?
}

/// Whether `password` matches the PHC string `hash`; with no hash, checks against a decoy and
/// answers no.
pub async fn verify(
    hashing: &Hashing,
    password: String,
    hash: Option<String>,
) -> Result<bool, ApiError> {
    hashing
        .run(move || {
            let known = hash.is_some();
            let stored = hash.unwrap_or_else(|| decoy().to_owned());
            let parsed = PasswordHash::new(&stored)
                .map_err(|e| ApiError::internal(anyhow::anyhow!("stored hash is invalid: {e}")))?;
            let matches = Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok();
            Ok(known && matches)
        })
        .await?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let hashing = Hashing::new(2, 2);
        let hash = hash(&hashing, "correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(!hash.contains("correct horse"));
        assert!(
            verify(&hashing, "correct horse".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(
            !verify(&hashing, "wrong horse".into(), Some(hash))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn an_unknown_user_never_verifies() {
        assert!(PasswordHash::new(decoy()).is_ok());
        assert!(
            !verify(&Hashing::new(1, 1), "anything".into(), None)
                .await
                .unwrap()
        );
    }
}
