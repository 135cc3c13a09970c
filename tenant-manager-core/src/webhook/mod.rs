//! Signed webhooks: the `X-TM-Signature` header a sender puts on each delivery of a
//! [`TenantEvent`](crate::domain::TenantEvent), and the check a receiver runs on it.
//!
//! The header is `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, as Stripe
//! signs its webhooks. A receiver recomputes the HMAC over the raw body it received, compares
//! in constant time, and refuses a timestamp outside its tolerance (a replayed delivery).
//! Several `v1=` entries may be present while a secret rotates: one match is enough.
//!
//! ```
//! # fn main() -> tenant_manager_core::Result<()> {
//! use std::time::Duration;
//! use tenant_manager_core::Secret;
//! use tenant_manager_core::webhook::{SIGNATURE_HEADER, sign, verify};
//!
//! let secret = Secret::new("whsec_from_your_config");
//! let body = br#"{"kind":"suspended"}"#;
//! let now = time::OffsetDateTime::now_utc();
//! let header = sign(&secret, now.unix_timestamp(), body)?;
//! // The receiver, with the raw body and the header value of SIGNATURE_HEADER:
//! assert!(verify(&secret, &header, body, now, Duration::from_secs(300)).is_ok());
//! # let _ = SIGNATURE_HEADER;
//! # Ok(())
//! # }
//! ```

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use crate::domain::Secret;
use crate::error::{Error, Result};

/// Name of the signature header.
pub const SIGNATURE_HEADER: &str = "X-TM-Signature";
/// Name of the header carrying the event id (the same on every retry: drop duplicates by it).
pub const EVENT_ID_HEADER: &str = "X-TM-Event-Id";
/// A receiver's default tolerance for the signature's timestamp.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// The HMAC-SHA256 of `"<timestamp>.<body>"` under `secret`.
fn mac(secret: &Secret, timestamp: i64, body: &[u8]) -> Result<Hmac<Sha256>> {
    // HMAC takes keys of any length; the error is the library's signature, never seen.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
        .map_err(|_| Error::invalid("secret", "is not a usable HMAC key"))?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(mac)
}

/// The signature header value of `body` sent at `timestamp` (unix seconds).
///
/// # Errors
/// [`Error::InvalidInput`] on `secret` if HMAC refuses the key (it takes any length).
pub fn sign(secret: &Secret, timestamp: i64, body: &[u8]) -> Result<String> {
    let digest = mac(secret, timestamp, body)?.finalize().into_bytes();
    Ok(format!("t={timestamp},v1={}", hex::encode(digest)))
}

/// Checks a signature header against the raw `body`: one `v1` signature must match under
/// `secret` (compared in constant time), and its timestamp must be within `tolerance` of
/// `now`, either way.
///
/// # Errors
/// [`Error::Unauthenticated`] when the header is malformed, the timestamp is outside the
/// tolerance, or no signature matches; the reason says which, never the expected value.
/// [`Error::InvalidInput`] on `secret` if HMAC refuses the key.
pub fn verify(
    secret: &Secret,
    header: &str,
    body: &[u8],
    now: OffsetDateTime,
    tolerance: Duration,
) -> Result<()> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => signatures.push(v),
            _ => {}
        }
    }
    let Some(timestamp) = timestamp else {
        return Err(Error::unauthenticated("signature header has no timestamp"));
    };
    if signatures.is_empty() {
        return Err(Error::unauthenticated(
            "signature header has no v1 signature",
        ));
    }
    let age = now.unix_timestamp().abs_diff(timestamp);
    if age > tolerance.as_secs() {
        return Err(Error::unauthenticated(
            "signature timestamp is outside the tolerance",
        ));
    }
    let expected: [u8; 32] = mac(secret, timestamp, body)?.finalize().into_bytes().into();
    let matched = signatures.iter().any(|candidate| {
        hex::decode(candidate).is_ok_and(|bytes| bool::from(bytes.as_slice().ct_eq(&expected)))
    });
    if matched {
        Ok(())
    } else {
        Err(Error::unauthenticated("signature does not match"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOL: Duration = Duration::from_secs(300);

    #[test]
    fn a_signature_verifies_only_for_its_secret_body_and_time() {
        let secret = Secret::new("whsec_test");
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let t = now.unix_timestamp();
        let header = sign(&secret, t, b"{\"a\":1}").unwrap_or_default();
        assert!(header.starts_with(&format!("t={t},v1=")));
        assert!(verify(&secret, &header, b"{\"a\":1}", now, TOL).is_ok());
        // Another body, another secret, a replay outside the window: refused.
        assert!(verify(&secret, &header, b"{\"a\":2}", now, TOL).is_err());
        assert!(verify(&Secret::new("other"), &header, b"{\"a\":1}", now, TOL).is_err());
        let later = now + time::Duration::seconds(301);
        assert!(verify(&secret, &header, b"{\"a\":1}", later, TOL).is_err());
        let earlier = now - time::Duration::seconds(301);
        assert!(verify(&secret, &header, b"{\"a\":1}", earlier, TOL).is_err());
        // The timestamp is signed: moving it breaks the signature.
        let moved = header.replace(&format!("t={t}"), &format!("t={}", t + 1));
        assert!(verify(&secret, &moved, b"{\"a\":1}", now, TOL).is_err());
        // Malformed headers.
        for bad in ["", "v1=00", &format!("t={t}"), &format!("t={t},v1=zz")] {
            assert!(
                verify(&secret, bad, b"{\"a\":1}", now, TOL).is_err(),
                "{bad}"
            );
        }
        // During a rotation, any one matching signature is enough.
        let old = sign(&Secret::new("old"), t, b"x").unwrap_or_default();
        let both = format!(
            "{old},v1={}",
            &sign(&secret, t, b"x").unwrap_or_default()[format!("t={t},v1=").len()..]
        );
        assert!(verify(&secret, &both, b"x", now, TOL).is_ok());
    }
}
