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
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::domain::{TenantId, UserId};

    const SECRET: &[u8] = b"a-verify-test-secret-of-32-bytes-at-least";
    const NOW: i64 = 1_800_000_000;
    const LEEWAY: i64 = 30;
    /// `{"typ":"JWT","alg":"HS256"}`, the header `jsonwebtoken` writes for HS256.
    const ISSUED: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9";

    fn verifier() -> TokenVerifier {
        let key = VerifyingKey::hs256(SECRET).unwrap_or_else(|e| panic!("{e}"));
        TokenVerifier::new(key, ISSUED.to_owned(), "iss".into(), "aud".into(), LEEWAY)
    }

    fn claims() -> Value {
        json!({
            "sub": UserId::new(), "tid": TenantId::new(), "role": "member", "jti": "j",
            "iat": NOW, "nbf": NOW, "exp": NOW + 60, "iss": "iss", "aud": "aud",
        })
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A token with `header` (encoded as given) and `claims`, signed with `secret`.
    fn sign_with(header: &str, claims: &Value, secret: &[u8]) -> String {
        let message = format!("{header}.{}", b64(claims.to_string().as_bytes()));
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|e| panic!("{e}"));
        mac.update(message.as_bytes());
        format!("{message}.{}", b64(&mac.finalize().into_bytes()))
    }

    fn sign(header_json: &str, claims: &Value) -> String {
        sign_with(&b64(header_json.as_bytes()), claims, SECRET)
    }

    #[test]
    fn the_issued_header_and_equivalent_headers_are_accepted() {
        let verifier = verifier();
        assert_eq!(b64(br#"{"typ":"JWT","alg":"HS256"}"#), ISSUED);
        for header in [
            r#"{"typ":"JWT","alg":"HS256"}"#,
            r#"{"alg":"HS256"}"#,
            r#"{"alg":"HS256","kid":"k1","typ":"at+jwt"}"#,
        ] {
            let token = sign(header, &claims());
            assert!(verifier.verify(&token, NOW).is_ok(), "{header}");
        }
    }

    #[test]
    fn other_algorithms_and_critical_extensions_are_refused() {
        let verifier = verifier();
        for header in [
            r#"{"alg":"HS384"}"#,
            r#"{"alg":"hs256"}"#,
            r#"{"alg":"none"}"#,
            r#"{"alg":"EdDSA"}"#,
            r#"{"alg":"HS256","crit":["b64"],"b64":false}"#,
            r#"{"alg":"HS256","crit":[]}"#,
            r#"{"alg":"HS256","crit":null}"#,
        ] {
            let token = sign(header, &claims());
            assert_eq!(
                verifier.verify(&token, NOW).err(),
                Some(Refusal::Algorithm),
                "{header}"
            );
        }
        for header in [
            r#"{"typ":"JWT"}"#,
            r#"["HS256"]"#,
            r#"{"alg":"HS256","alg":"HS256"}"#,
        ] {
            let token = sign(header, &claims());
            assert_eq!(verifier.verify(&token, NOW).err(), Some(Refusal::Malformed));
        }
    }

    #[test]
    fn the_signature_is_checked_before_the_claims_are_read() {
        let verifier = verifier();
        let forged = sign_with(ISSUED, &claims(), b"another-secret-of-at-least-32-bytes!!");
        assert_eq!(
            verifier.verify(&forged, NOW).err(),
            Some(Refusal::Signature)
        );
        // A payload that is not even JSON, badly signed, is a signature failure, not a parse.
        let garbage = format!("{ISSUED}.{}.{}", b64(b"{{{"), b64(&[0; 32]));
        assert_eq!(
            verifier.verify(&garbage, NOW).err(),
            Some(Refusal::Signature)
        );
        let token = sign_with(ISSUED, &claims(), SECRET);
        let (message, signature) = token.rsplit_once('.').unwrap_or_default();
        for bad in [
            String::new(),
            signature[..signature.len() - 1].to_owned(),
            format!("{signature}AA"),
            format!("{signature}="),
            "A".repeat(200),
        ] {
            let token = format!("{message}.{bad}");
            assert_eq!(verifier.verify(&token, NOW).err(), Some(Refusal::Signature));
        }
        for parts in [
            message.to_owned(),
            format!("{token}.{signature}"),
            format!("{ISSUED}..{signature}"),
        ] {
            assert!(verifier.verify(&parts, NOW).is_err(), "{parts}");
        }
    }

    #[test]
    fn times_are_checked_with_the_leeway_at_their_bounds() {
        let verifier = verifier();
        let at = |claim: &str, value: i64| {
            let mut claims = claims();
            claims[claim] = json!(value);
            verifier
                .verify(&sign_with(ISSUED, &claims, SECRET), NOW)
                .err()
        };
        assert_eq!(at("exp", NOW - LEEWAY), None);
        assert_eq!(at("exp", NOW - LEEWAY - 1), Some(Refusal::Expired));
        assert_eq!(at("nbf", NOW + LEEWAY), None);
        assert_eq!(at("nbf", NOW + LEEWAY + 1), Some(Refusal::NotYetValid));
        assert_eq!(at("iat", NOW + LEEWAY), None);
        assert_eq!(at("iat", NOW + LEEWAY + 1), Some(Refusal::IssuedInFuture));
    }

    #[test]
    fn claims_must_all_be_there_with_the_right_issuer_and_audience() {
        let verifier = verifier();
        let with = |claim: &str, value: Value| {
            let mut claims = claims();
            claims[claim] = value;
            verifier
                .verify(&sign_with(ISSUED, &claims, SECRET), NOW)
                .err()
        };
        assert_eq!(with("iss", json!("other")), Some(Refusal::Issuer));
        assert_eq!(with("aud", json!("other")), Some(Refusal::Audience));
        assert_eq!(with("aud", json!(["aud"])), Some(Refusal::Claims));
        assert_eq!(with("exp", json!(1.5e9)), Some(Refusal::Claims));
        assert_eq!(with("sub", json!("not-a-uuid")), Some(Refusal::Claims));
        for claim in [
            "sub", "tid", "role", "jti", "iat", "nbf", "exp", "iss", "aud",
        ] {
            let mut claims = claims();
            if let Some(map) = claims.as_object_mut() {
                map.remove(claim);
            }
            let token = sign_with(ISSUED, &claims, SECRET);
            assert_eq!(
                verifier.verify(&token, NOW).err(),
                Some(Refusal::Claims),
                "{claim}"
            );
        }
    }

    /// The same bytes under another base64url spelling: a last character whose unused low
    /// bits are set, or padding. A lenient decoder accepts both; this one refuses them, so a
    /// signed token has exactly one accepted form.
    #[test]
    fn only_canonical_unpadded_base64url_is_accepted() {
        let verifier = verifier();
        let token = sign_with(ISSUED, &claims(), SECRET);
        assert!(verifier.verify(&token, NOW).is_ok());
        let (message, signature) = token.rsplit_once('.').unwrap_or_default();
        // 32 bytes are 43 characters; the last one carries 4 bits and 2 unused zero bits.
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let last = signature.bytes().last().unwrap_or_default();
        let index = alphabet.iter().position(|&c| c == last).unwrap_or_default();
        assert_eq!(index % 4, 0, "a canonical last character");
        let sloppy = format!(
            "{}{}",
            &signature[..signature.len() - 1],
            char::from(alphabet[index + 1])
        );
        assert_eq!(
            verifier.verify(&format!("{message}.{sloppy}"), NOW).err(),
            Some(Refusal::Signature)
        );
        // `{"alg":"HS256"}` plus a space is 16 bytes: 22 characters, 2 of padding if padded.
        let padded = format!("{}==", b64(br#"{"alg":"HS256"} "#));
        assert_eq!(
            verifier
                .verify(&sign_with(&padded, &claims(), SECRET), NOW)
                .err(),
            Some(Refusal::Malformed)
        );
        let standard = base64::engine::general_purpose::STANDARD_NO_PAD;
        assert_eq!(
            verifier
                .verify(
                    &sign_with(&standard.encode(b"\xfb\xff{}"), &claims(), SECRET),
                    NOW
                )
                .err(),
            Some(Refusal::Malformed),
            "the standard alphabet's + and / are not base64url"
        );
    }

    /// Input an attacker controls completely, none of it signed with the key: refused with a
    /// category, never a panic or unbounded work.
    #[test]
    fn hostile_input_is_refused_without_panicking() {
        let verifier = verifier();
        let forged = |header_json: &str| {
            sign_with(
                &b64(header_json.as_bytes()),
                &claims(),
                b"another-secret-of-at-least-32-bytes!!",
            )
        };
        let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let signed = sign_with(ISSUED, &claims(), SECRET);
        let cases = [
            (".".repeat(100_000), Refusal::Malformed),
            (format!("{signed}."), Refusal::Malformed),
            (format!("{signed}{}", ".".repeat(1000)), Refusal::Malformed),
            ("\0.\0.\0".to_owned(), Refusal::Malformed),
            (format!("é{signed}"), Refusal::Malformed),
            (format!("{ISSUED}.é.ü"), Refusal::Signature),
            (format!("{signed}\u{fffd}"), Refusal::Signature),
            (format!(" {signed}"), Refusal::Malformed),
            (
                format!("{}.e30.", b64(&[0xff, 0xfe, 0xfd])),
                Refusal::Malformed,
            ),
            (forged(&nested(100_000)), Refusal::Malformed),
            (
                forged(&format!(r#"{{"alg":{}}}"#, nested(100_000))),
                Refusal::Malformed,
            ),
            (
                forged(&format!(r#"{{"kid":{},"alg":"HS256"}}"#, nested(100_000))),
                Refusal::Signature,
            ),
            (
                forged(&format!(
                    r#"{{"alg":"HS256","kid":"{}"}}"#,
                    "k".repeat(1 << 20)
                )),
                Refusal::Signature,
            ),
        ];
        for (token, refusal) in &cases {
            let shown: String = token.chars().take(60).collect();
            assert_eq!(verifier.verify(token, NOW).err(), Some(*refusal), "{shown}");
        }
    }

    /// The verdict `jsonwebtoken::decode` (with the validation this crate used before this
    /// verifier, plus the `iat` check) gives: accepted, expired, or refused otherwise.
    fn reference(token: &str, now: i64) -> std::result::Result<(), bool> {
        let mut validation = jsonwebtoken::Validation::new(Algorithm::HS256);
        validation.leeway = u64::try_from(LEEWAY).unwrap_or(0);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_issuer(&["iss"]);
        validation.set_audience(&["aud"]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        let key = DecodingKey::from_secret(SECRET);
        match jsonwebtoken::decode::<Claims>(token, &key, &validation) {
            Ok(data) if data.claims.iat > now + LEEWAY => Err(false),
            Ok(_) => Ok(()),
            Err(e) => Err(*e.kind() == jsonwebtoken::errors::ErrorKind::ExpiredSignature),
        }
    }

    #[test]
    fn verdicts_match_jsonwebtoken_decode() {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let key = VerifyingKey::hs256(SECRET).unwrap_or_else(|e| panic!("{e}"));
        let verifier =
            TokenVerifier::new(key, ISSUED.to_owned(), "iss".into(), "aud".into(), LEEWAY);
        let valid = || {
            json!({
                "sub": UserId::new(), "tid": TenantId::new(), "role": "admin", "jti": "j",
                "iat": now, "nbf": now, "exp": now + 600, "iss": "iss", "aud": "aud",
            })
        };
        let mut payloads = vec![valid()];
        for (claim, value) in [
            ("exp", json!(now - 600)),
            ("nbf", json!(now + 600)),
            ("iat", json!(now + 600)),
            ("iss", json!("other")),
            ("aud", json!("other")),
            ("aud", json!(["aud"])),
            ("role", json!("root")),
            ("sub", json!(7)),
            ("extra", json!({"nested": [1, 2]})),
        ] {
            let mut payload = valid();
            payload[claim] = value;
            payloads.push(payload);
        }
        for claim in [
            "sub", "tid", "role", "jti", "iat", "nbf", "exp", "iss", "aud",
        ] {
            let mut payload = valid();
            if let Some(map) = payload.as_object_mut() {
                map.remove(claim);
            }
            payloads.push(payload);
        }
        let headers = [
            ISSUED.to_owned(),
            b64(br#"{"alg":"HS256","kid":"k"}"#),
            b64(br#"{"alg":"HS512"}"#),
            b64(br#"{"alg":"none"}"#),
            b64(b"not json"),
            "!!".to_owned(),
        ];
        let mut tokens = Vec::new();
        for payload in &payloads {
            for header in &headers {
                tokens.push(sign_with(header, payload, SECRET));
                tokens.push(sign_with(
                    header,
                    payload,
                    b"another-secret-of-at-least-32-bytes!!",
                ));
            }
        }
        let signed = sign_with(ISSUED, &valid(), SECRET);
        tokens.extend([
            String::new(),
            "a.b".to_owned(),
            "a.b.c.d".to_owned(),
            format!("{signed}x"),
            format!("{signed}.x"),
            signed.replacen('.', "..", 1),
        ]);
        for token in &tokens {
            let ours = verifier
                .verify(token, now)
                .map(|_| ())
                .map_err(|refusal| refusal == Refusal::Expired);
            assert_eq!(ours, reference(token, now), "{token}");
        }
    }
}
