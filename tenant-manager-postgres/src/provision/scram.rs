//! SCRAM-SHA-256 verifiers, computed here so a role's plain password never reaches the server
//! (nor its statement log): `CREATE ROLE ... PASSWORD 'SCRAM-SHA-256$4096:...'` stores the
//! verifier as is, exactly as `psql`'s `\password` does.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use tenant_manager_core::{Error, Result, Secret};

/// PBKDF2 iterations, Postgres' default `scram_iterations`.
const ITERATIONS: u32 = 4096;

fn hmac(key: &[u8], parts: &[&[u8]]) -> Result<[u8; 32]> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key)
        .map_err(|e| Error::internal_with("hmac key refused", e.to_string()))?;
    for part in parts {
        mac.update(part);
    }
    Ok(mac.finalize().into_bytes().into())
}

/// PBKDF2-HMAC-SHA256 with one output block (32 bytes), as SCRAM's `Hi()`.
fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> Result<[u8; 32]> {
    let mut u = hmac(password, &[salt, &1u32.to_be_bytes()])?;
    let mut out = u;
    for _ in 1..iterations {
        u = hmac(password, &[&u])?;
        for (o, b) in out.iter_mut().zip(u.iter()) {
            *o ^= b;
        }
    }
    Ok(out)
}

/// The client and server keys of a salted password.
fn keys(salted: &[u8; 32]) -> Result<([u8; 32], [u8; 32])> {
    Ok((
        hmac(salted, &[b"Client Key"])?,
        hmac(salted, &[b"Server Key"])?,
    ))
}

/// The verifier `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` of a password, with
/// a fresh random salt.
///
/// # Errors
/// `Internal` only if HMAC refuses a key, which it does not for SHA-256.
pub(crate) fn verifier(password: &Secret) -> Result<Secret> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    verifier_with_salt(password.expose().as_bytes(), &salt, ITERATIONS)
}

fn verifier_with_salt(password: &[u8], salt: &[u8], iterations: u32) -> Result<Secret> {
    let salted = salted_password(password, salt, iterations)?;
    let (client_key, server_key) = keys(&salted)?;
    let stored_key = Sha256::digest(client_key);
    Ok(Secret::new(format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        STANDARD.encode(salt),
        STANDARD.encode(stored_key),
        STANDARD.encode(server_key)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's example exchange: the server signature depends on the verifier's server key,
    /// the client proof on its client key, so matching both checks the derivation.
    #[test]
    fn derivation_matches_rfc_7677() {
        let salt = STANDARD
            .decode("W22ZaJ0SNY7soEsUEjb6gQ==")
            .unwrap_or_else(|e| panic!("{e}"));
        let salted = salted_password(b"pencil", &salt, 4096).unwrap_or_else(|e| panic!("{e}"));
        let (client_key, server_key) = keys(&salted).unwrap_or_else(|e| panic!("{e}"));
        let auth = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
                    r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                    s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
                    c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let server_sig = hmac(&server_key, &[auth.as_bytes()]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            STANDARD.encode(server_sig),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        let stored = Sha256::digest(client_key);
        let sig = hmac(&stored, &[auth.as_bytes()]).unwrap_or_else(|e| panic!("{e}"));
        let proof: Vec<u8> = client_key
            .iter()
            .zip(sig.iter())
            .map(|(a, b)| a ^ b)
            .collect();
        assert_eq!(
            STANDARD.encode(proof),
            "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        let v = verifier(&Secret::new("pencil")).unwrap_or_else(|e| panic!("{e}"));
        assert!(v.expose().starts_with("SCRAM-SHA-256$4096:"));
        assert!(!v.expose().contains("pencil"));
    }
}
