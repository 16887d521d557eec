//! Actor ids are the learner's to hand out: each registration gets an id and a secret that
//! proves it (HMAC-SHA256 of the id under the run's id key, kept in checkpoints so that a
//! resumed learner recognises its actors). A reconnecting actor that shows the secret keeps its
//! id (its seed, environments and exploration carry on); anything else gets a new id.
//!
//! ring's HMAC (already in the build through rustls) is used instead of a home-made MAC: the
//! check is constant-time and the construction is the standard one.

use ring::hmac;
use shoal_common::security;

/// The key actor-id secrets are made with.
#[derive(Clone)]
pub struct IdKey {
    bytes: [u8; 32],
    key: hmac::Key,
}

impl std::fmt::Debug for IdKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdKey(<secret>)")
    }
}

impl IdKey {
    fn from_bytes(bytes: [u8; 32]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, &bytes),
            bytes,
        }
    }

    /// A fresh random key (a new run).
    pub fn generate() -> std::io::Result<Self> {
        Ok(Self::from_bytes(security::random_bytes()?))
    }

    /// The key as a checkpoint keeps it (hex).
    pub fn to_hex(&self) -> String {
        security::hex(&self.bytes)
    }

    /// A key saved with [`IdKey::to_hex`]; `None` when `hex` is not one.
    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Self::from_bytes(bytes))
    }

    /// The secret that proves `actor_id`.
    pub fn secret(&self, actor_id: u32) -> Vec<u8> {
        hmac::sign(&self.key, &actor_id.to_le_bytes())
            .as_ref()
            .to_vec()
    }

    /// Whether `secret` proves `actor_id` (constant-time).
    pub fn verify(&self, actor_id: u32, secret: &[u8]) -> bool {
        hmac::verify(&self.key, &actor_id.to_le_bytes(), secret).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_proves_its_id_only_and_survives_a_save() {
        let key = IdKey::generate().unwrap();
        let secret = key.secret(7);
        assert!(key.verify(7, &secret));
        assert!(!key.verify(8, &secret));
        assert!(!key.verify(7, &[]));
        let other = IdKey::generate().unwrap();
        assert!(!other.verify(7, &secret));
        let restored = IdKey::from_hex(&key.to_hex()).unwrap();
        assert!(restored.verify(7, &secret));
        assert!(IdKey::from_hex("zz").is_none());
    }
}
