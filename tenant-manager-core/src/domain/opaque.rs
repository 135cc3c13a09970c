//! Opaque bearer tokens (invitations, refresh tokens): a public id to find the record by, and
//! a random secret of which only a digest is stored.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use uuid::Uuid;

use super::Secret;
use crate::error::{Error, Result};

/// Random bytes in a token's secret part (256 bits).
const SECRET_BYTES: usize = 32;

/// The SHA-256 digest of a token's secret: what a store keeps instead of the token. Its
/// `Debug` hides the value; compare two digests with [`TokenDigest::ct_eq`] (constant time).
#[derive(Clone, PartialEq, Eq)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    /// Wraps a stored digest.
    ///
    /// # Errors
    /// `Internal` when `bytes` is not 32 bytes long (a corrupt row).
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        <[u8; 32]>::try_from(bytes)
            .map(Self)
            .map_err(|_| Error::internal("a stored token digest is not 32 bytes long"))
    }

    /// The digest bytes, to store.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Constant-time comparison.
    pub fn ct_eq(&self, other: &TokenDigest) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenDigest(***)")
    }
}

/// An opaque token `<id>.<secret>`: the id (a UUID, 32 hex digits) finds the record, the
/// secret (256 random bits, base64url) proves possession. Its `Debug` shows only the id.
#[derive(Clone)]
pub struct OpaqueToken {
    id: Uuid,
    secret: Secret,
}

impl OpaqueToken {
    /// A fresh token for the record `id`, with a secret from the operating system's CSPRNG
    /// (through `rand`'s thread generator, seeded from it).
    pub fn generate(id: Uuid) -> Self {
        let bytes: [u8; SECRET_BYTES] = rand::random();
        Self {
            id,
            secret: Secret::new(URL_SAFE_NO_PAD.encode(bytes)),
        }
    }

    /// Parses a token a client sent back.
    ///
    /// # Errors
    /// `InvalidInput` on `field` when the shape is wrong (never says more).
    pub fn parse(value: &str, field: &'static str) -> Result<Self> {
        let bad = || Error::invalid(field, "is not a valid token");
        let (id, secret) = value.trim().split_once('.').ok_or_else(bad)?;
        if id.len() != 32 || secret.len() != 43 {
            return Err(bad());
        }
        let id = Uuid::try_parse(id).map_err(|_| bad())?;
        let mut decoded = [0u8; SECRET_BYTES];
        match URL_SAFE_NO_PAD.decode_slice(secret, &mut decoded) {
            Ok(SECRET_BYTES) => {}
            _ => return Err(bad()),
        }
        Ok(Self {
            id,
            secret: Secret::new(secret),
        })
    }

    /// The id of the record this token belongs to.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// The digest to store, or to compare with the stored one.
    pub fn digest(&self) -> TokenDigest {
        TokenDigest(Sha256::digest(self.secret.expose().as_bytes()).into())
    }

    /// The whole token, to hand to its owner once.
    pub fn to_secret(&self) -> Secret {
        Secret::new(format!("{}.{}", self.id.simple(), self.secret.expose()))
    }
}

impl fmt::Debug for OpaqueToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OpaqueToken({}.***)", self.id.simple())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_hide_their_secret() {
        let token = OpaqueToken::generate(Uuid::now_v7());
        let text = token.to_secret();
        let parsed = OpaqueToken::parse(text.expose(), "token");
        assert_eq!(parsed.as_ref().map(OpaqueToken::id).ok(), Some(token.id()));
        assert!(parsed.is_ok_and(|p| p.digest().ct_eq(&token.digest())));
        assert!(!format!("{token:?}").contains(&text.expose()[33..]));
        assert_eq!(format!("{:?}", token.digest()), "TokenDigest(***)");
        let other = OpaqueToken::generate(token.id());
        assert!(!other.digest().ct_eq(&token.digest()));
        for bad in [
            "",
            "x.y",
            &text.expose()[..60],
            &format!("{}x", text.expose()),
        ] {
            assert_eq!(
                OpaqueToken::parse(bad, "token")
                    .err()
                    .and_then(|e| e.field().map(str::to_owned)),
                Some("token".to_owned()),
                "{bad}"
            );
        }
    }
}
