//! `WallKeys`: the key the application signs its tenant proofs with.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tenant_manager_core::{Error, Result, Secret, TenantId};

use super::MIN_MASTER_SECRET_LEN;

/// Domain separation of derived wall keys; the key id follows.
const DERIVATION_CONTEXT: &[u8] = b"tenant-manager/wall-key/v1/";

/// Shortest key Postgres' key table accepts, in bytes (`CHECK (length(secret) >= 32)`).
pub const MIN_WALL_KEY_LEN: usize = 32;

/// The key the application proves a session's tenant with, and its id in the key table
/// `wall_private.keys` of every walled database.
///
/// Postgres keeps the keys where the app login cannot read them; the application keeps one
/// (the signing key). During a rotation two keys are valid in Postgres: instances signing with
/// either are accepted (see [`crate::wall`]). `Debug` never prints the secret.
#[derive(Clone)]
pub struct WallKeys {
    key_id: i32,
    secret: Vec<u8>,
}

impl WallKeys {
    /// A key given as bytes (at least [`MIN_WALL_KEY_LEN`]) with its id (1 or more).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `wall_key` (too short) or `wall_key_id` (below 1).
    pub fn new(key_id: i32, secret: &[u8]) -> Result<Self> {
        if key_id < 1 {
            return Err(Error::invalid("wall_key_id", "must be 1 or more"));
        }
        if secret.len() < MIN_WALL_KEY_LEN {
            return Err(Error::invalid("wall_key", "must be at least 32 bytes long"));
        }
        Ok(Self {
            key_id,
            secret: secret.to_vec(),
        })
    }

    /// Key `key_id` derived from `master` (the master secret of
    /// [`DerivedCredentials`](crate::DerivedCredentials)): HMAC-SHA256 under the master of
    /// `tenant-manager/wall-key/v1/<key_id>`. Every instance derives the same key, and a new
    /// id gives a new key, so rotating needs no second secret.
    ///
    /// # Errors
    /// As [`WallKeys::new`]; `master_secret` when it is shorter than 32 bytes.
    pub fn derived(master: &Secret, key_id: i32) -> Result<Self> {
        if master.len() < MIN_MASTER_SECRET_LEN {
            return Err(Error::invalid(
                "master_secret",
                "must be at least 32 bytes long",
            ));
        }
        let mut mac = hmac(master.expose().as_bytes())?;
        mac.update(DERIVATION_CONTEXT);
        mac.update(key_id.to_string().as_bytes());
        Self::new(key_id, &mac.finalize().into_bytes())
    }

    /// The id of the signing key.
    pub fn key_id(&self) -> i32 {
        self.key_id
    }

    /// The key's bytes, for inserting it into a key table.
    pub(crate) fn secret(&self) -> &[u8] {
        &self.secret
    }

    /// The proof of `tenant` on backend `pid` started at `backend_start_us` (µs since the
    /// epoch) with `nonce`: lower-case hex of HMAC-SHA256 over
    /// `<tenant>|<pid>|<backend_start_us>|<nonce>`, as `wall.enter()` recomputes it.
    ///
    /// # Errors
    /// `Internal` if the HMAC refuses the key (it accepts any length).
    pub fn sign(
        &self,
        tenant: TenantId,
        pid: i32,
        backend_start_us: i64,
        nonce: i64,
    ) -> Result<String> {
        let mut mac = hmac(&self.secret)?;
        mac.update(format!("{tenant}|{pid}|{backend_start_us}|{nonce}").as_bytes());
        Ok(hex::encode(mac.finalize().into_bytes()))
    }
}

fn hmac(key: &[u8]) -> Result<Hmac<Sha256>> {
    Hmac::<Sha256>::new_from_slice(key)
        .map_err(|e| Error::internal_with("hmac key refused", e.to_string()))
}

impl fmt::Debug for WallKeys {
    /// The key id; the key redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WallKeys")
            .field("key_id", &self.key_id)
            .field("secret", &"[redacted]")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_differ_by_id_and_master_and_stay_hidden() {
        let master = Secret::new("m".repeat(32));
        let one = WallKeys::derived(&master, 1).unwrap_or_else(|e| panic!("{e}"));
        let again = WallKeys::derived(&master, 1).unwrap_or_else(|e| panic!("{e}"));
        let two = WallKeys::derived(&master, 2).unwrap_or_else(|e| panic!("{e}"));
        let other =
            WallKeys::derived(&Secret::new("n".repeat(32)), 1).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(one.secret(), again.secret());
        assert_ne!(one.secret(), two.secret());
        assert_ne!(one.secret(), other.secret());
        assert!(!format!("{one:?}").contains(&hex::encode(one.secret())));
        assert!(WallKeys::derived(&Secret::new("short"), 1).is_err());
        assert!(WallKeys::new(0, &[0; 32]).is_err());
        assert!(WallKeys::new(1, &[0; 31]).is_err());
    }

    #[test]
    fn proofs_bind_every_part() {
        let keys = WallKeys::new(1, &[7; 32]).unwrap_or_else(|e| panic!("{e}"));
        let tenant = TenantId::new();
        let base = keys
            .sign(tenant, 10, 20, 30)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(base.len(), 64);
        for other in [
            keys.sign(TenantId::new(), 10, 20, 30),
            keys.sign(tenant, 11, 20, 30),
            keys.sign(tenant, 10, 21, 30),
            keys.sign(tenant, 10, 20, 31),
        ] {
            assert_ne!(other.unwrap_or_else(|e| panic!("{e}")), base);
        }
    }
}
