//! SCRAM-SHA-256 verifiers, computed here so a role's plain password never reaches the server
//! (nor its statement log): `CREATE ROLE ... PASSWORD 'SCRAM-SHA-256$4096:...'` stores the
//! verifier as is, exactly as `psql`'s `\password` does. The derivation is
//! `postgres-protocol`'s (SASLprep, PBKDF2 with Postgres' default 4096 iterations, a random
//! 16-byte salt).

use tenant_manager_core::Secret;

/// The verifier `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` of a password, with
/// a fresh random salt. It holds only base64 and `$:` characters, so it needs no escaping.
pub(crate) fn verifier(password: &Secret) -> Secret {
    Secret::new(postgres_protocol::password::scram_sha_256(
        password.expose().as_bytes(),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use hmac::{Hmac, Mac};
    use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
    use sha2::{Digest, Sha256};

    use super::*;

    fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }

    /// The server's side of a SCRAM exchange (RFC 5802, 7677), from the verifier alone, with
    /// a client that knows `password`: whether the server accepts the client's proof, and the
    /// client the server's signature.
    fn exchange(verifier: &str, password: &str) -> bool {
        let (iterations, salt, stored_key, server_key) = {
            let rest = verifier.strip_prefix("SCRAM-SHA-256$").unwrap();
            let (params, keys) = rest.split_once('$').unwrap();
            let (iterations, salt) = params.split_once(':').unwrap();
            let (stored, server) = keys.split_once(':').unwrap();
            (
                iterations.to_owned(),
                salt.to_owned(),
                STANDARD.decode(stored).unwrap(),
                STANDARD.decode(server).unwrap(),
            )
        };
        let mut client = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
        let client_first = String::from_utf8(client.message().to_vec()).unwrap();
        let client_first_bare = client_first.strip_prefix("n,,").unwrap();
        let client_nonce = client_first_bare.split_once("r=").unwrap().1;
        let server_first = format!("r={client_nonce}ServerNonce,s={salt},i={iterations}");
        client.update(server_first.as_bytes()).unwrap();
        let client_final = String::from_utf8(client.message().to_vec()).unwrap();
        let (without_proof, proof) = client_final.rsplit_once(",p=").unwrap();
        let auth = format!("{client_first_bare},{server_first},{without_proof}");
        // The server recovers the client key from the proof and checks it against StoredKey.
        let signature = hmac(&stored_key, auth.as_bytes());
        let client_key: Vec<u8> = STANDARD
            .decode(proof)
            .unwrap()
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        if Sha256::digest(&client_key)[..] != stored_key[..] {
            return false;
        }
        // The client checks the server's signature, made with ServerKey.
        let server_final = format!("v={}", STANDARD.encode(hmac(&server_key, auth.as_bytes())));
        client.finish(server_final.as_bytes()).is_ok()
    }

    /// A verifier admits its password and nothing else through a real SCRAM exchange, which
    /// checks both its keys; it never holds the password, and its salt is fresh each time.
    #[test]
    fn verifier_admits_its_password_only() {
        let v = verifier(&Secret::new("pencil"));
        let v = v.expose();
        assert!(v.starts_with("SCRAM-SHA-256$4096:"), "{v}");
        assert!(!v.contains("pencil"));
        assert!(exchange(v, "pencil"));
        assert!(!exchange(v, "pencils"));
        assert_ne!(verifier(&Secret::new("pencil")).expose(), v);
    }
}
