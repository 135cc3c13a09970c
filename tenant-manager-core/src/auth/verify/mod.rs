//! Verification of compact JWS access tokens in one pass: split once, check the header, check
//! the signature over the first two parts, and only then decode and check the claims.
//!
//! `jsonwebtoken::decode` parses the header twice and the claims twice (once for the caller,
//! once into a map for its checks) and keys a new HMAC on every call; on the request path that
//! was most of the cost of a request. This verifier keys the HMAC once, recognises the header
//! this service issues without decoding it, and decodes the claims once. The rules are the same:
//! the configured algorithm only, the signature before anything in the payload is read, `exp`
//! and `nbf` with leeway, `iat` not in the future beyond the leeway, `iss`, `aud`, every claim
//! present.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};
use sha2::Sha256;

use super::claims::Claims;
use crate::error::{Error, Result};

/// Room for a decoded HS256 signature (32 bytes), with the margin base64's length estimate asks
/// for; a longer signature is refused without being decoded. (Ed25519 signatures are decoded by
/// `jsonwebtoken`.)
const MAX_SIGNATURE_BYTES: usize = 96;

/// Why a token was refused: logged at debug level as a coarse category, never with the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Not three base64url parts, or a header that is not a JOSE header.
    Malformed,
    /// A header naming another algorithm, or critical extensions.
    Algorithm,
    /// The signature does not match.
    Signature,
    /// The payload is not the claims of an access token (a claim missing or of the wrong type).
    Claims,
    /// `exp` is past, beyond the leeway.
    Expired,
    /// `nbf` is ahead, beyond the leeway.
    NotYetValid,
    /// `iat` is ahead, beyond the leeway.
    IssuedInFuture,
    /// Another issuer.
    Issuer,
    /// Another audience.
    Audience,
}

impl Refusal {
    /// The category recorded in the debug log.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed",
            Refusal::Algorithm => "algorithm",
            Refusal::Signature => "signature",
            Refusal::Claims => "claims",
            Refusal::Expired => "expired",
            Refusal::NotYetValid => "not_yet_valid",
            Refusal::IssuedInFuture => "iat_in_future",
            Refusal::Issuer => "issuer",
            Refusal::Audience => "audience",
        }
    }
}

/// The key that checks signatures, built once per service.
pub(super) enum VerifyingKey {
    /// HMAC-SHA256 keyed once: each verification clones the keyed state instead of hashing
    /// the secret into it again.
    Hs256(Hmac<Sha256>),
    /// An Ed25519 public key, checked through `jsonwebtoken`'s crypto backend.
    EdDsa(DecodingKey),
}

impl VerifyingKey {
    /// HS256 with `secret`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `jwt_secret` if HMAC refuses the key (it takes any length).
    pub(super) fn hs256(secret: &[u8]) -> Result<Self> {
        Hmac::<Sha256>::new_from_slice(secret)
            .map(VerifyingKey::Hs256)
            .map_err(|_| Error::invalid("jwt_secret", "is not a usable HMAC key"))
    }

    /// The JOSE name of the algorithm, as the `alg` header must give it.
    fn alg(&self) -> &'static str {
        match self {
            VerifyingKey::Hs256(_) => "HS256",
            VerifyingKey::EdDsa(_) => "EdDSA",
        }
    }

    /// Whether `signature` (base64url) signs `message` (the first two parts and their dot).
    fn verifies(&self, message: &[u8], signature: &str) -> bool {
        match self {
            VerifyingKey::Hs256(keyed) => {
                let mut decoded = [0_u8; MAX_SIGNATURE_BYTES];
                let Ok(len) = URL_SAFE_NO_PAD.decode_slice(signature, &mut decoded) else {
                    return false;
                };
                let mut mac = keyed.clone();
                mac.update(message);
                // Constant-time comparison; a tag of another length is refused.
                mac.verify_slice(&decoded[..len]).is_ok()
            }
            VerifyingKey::EdDsa(key) => {
                jsonwebtoken::crypto::verify(signature, message, key, Algorithm::EdDSA)
                    .unwrap_or(false)
            }
        }
    }
}

/// The JOSE header fields the verifier reads; any others are ignored.
#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
    /// Whether the header has a `crit` (critical extensions) member, whatever its value, even
    /// `null`: this verifier understands no extension, so such a token is refused (RFC 7515,
    /// section 4.1.11).
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

/// `true` for any value, so a member that is there reads as present even when `null`.
fn present<'de, D: Deserializer<'de>>(value: D) -> std::result::Result<bool, D::Error> {
    IgnoredAny::deserialize(value).map(|_| true)
}

/// Checks access tokens against one key, issuer, audience and leeway.
pub(super) struct TokenVerifier {
    key: VerifyingKey,
    /// The base64url header this service puts on its tokens, recognised without decoding.
    issued_header: String,
    issuer: String,
    audience: String,
    leeway_secs: i64,
}

impl TokenVerifier {
    /// A verifier for tokens signed with `key` whose header, as issued, is `issued_header`.
    pub(super) fn new(
        key: VerifyingKey,
        issued_header: String,
        issuer: String,
        audience: String,
        leeway_secs: i64,
    ) -> Self {
        Self {
            key,
            issued_header,
            issuer,
            audience,
            leeway_secs,
        }
    }

    /// The claims of `token` if it is valid at `now` (Unix seconds).
    pub(super) fn verify(&self, token: &str, now: i64) -> std::result::Result<Claims, Refusal> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Refusal::Malformed);
        };
        self.check_header(header)?;
        // header.payload, as signed.
        let message = &token.as_bytes()[..header.len() + 1 + payload.len()];
        if !self.key.verifies(message, signature) {
            return Err(Refusal::Signature);
        }
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| Refusal::Malformed)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| Refusal::Claims)?;
        self.check_claims(&claims, now)?;
        Ok(claims)
    }

    /// The header must name the configured algorithm and no critical extension.
    fn check_header(&self, header: &str) -> std::result::Result<(), Refusal> {
        if header == self.issued_header {
            return Ok(());
        }
        let decoded = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| Refusal::Malformed)?;
        // A JSON object: serde would also read a struct from an array.
        if decoded.trim_ascii_start().first() != Some(&b'{') {
            return Err(Refusal::Malformed);
        }
        let header: JoseHeader =
            serde_json::from_slice(&decoded).map_err(|_| Refusal::Malformed)?;
        if header.alg != self.key.alg() || header.crit {
            return Err(Refusal::Algorithm);
        }
        Ok(())
    }

    /// Expiry first (the one refusal with its own reason), then the rest.
    fn check_claims(&self, claims: &Claims, now: i64) -> std::result::Result<(), Refusal> {
        let leeway = self.leeway_secs;
        if claims.exp < now.saturating_sub(leeway) {
            return Err(Refusal::Expired);
        }
        if claims.nbf > now.saturating_add(leeway) {
            return Err(Refusal::NotYetValid);
        }
        if claims.iss != self.issuer {
            return Err(Refusal::Issuer);
        }
        if claims.aud != self.audience {
            return Err(Refusal::Audience);
        }
        if claims.iat > now.saturating_add(leeway) {
            return Err(Refusal::IssuedInFuture);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
