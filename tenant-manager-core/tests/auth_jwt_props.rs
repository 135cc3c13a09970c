//! Property tests of the one-pass JWT verifier behind `TokenService::verify`: over arbitrary
//! byte strings, mutated tokens, arbitrary headers and arbitrary claim sets it never panics,
//! never echoes the token, and gives the verdict `jsonwebtoken::decode` gives.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use proptest::prelude::*;
use serde_json::{Value, json};
use sha2::Sha256;
use tenant_manager_core::auth::{Claims, JwtConfig, TokenService};
use tenant_manager_core::{Error, TenantId, UserId};
use time::OffsetDateTime;

const SECRET: &str = "an-hs256-secret-of-at-least-32-bytes!";
const OTHER_SECRET: &str = "another-secret-of-at-least-32-bytes!!";
/// `{"typ":"JWT","alg":"HS256"}`, the header the service issues.
const HEADER: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9";

fn service() -> TokenService {
    TokenService::new(JwtConfig::hs256(SECRET)).unwrap()
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// The verdict of `jsonwebtoken::decode` with the same rules: accepted, or refused with
/// `true` when the refusal is expiry.
fn reference(config: &JwtConfig, token: &str) -> Result<(), bool> {
    let leeway = config.leeway.as_secs();
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = leeway;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.validate_aud = true;
    validation.set_issuer(&[&config.issuer]);
    validation.set_audience(&[&config.audience]);
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
    let key = DecodingKey::from_secret(SECRET.as_bytes());
    match jsonwebtoken::decode::<Claims>(token, &key, &validation) {
        Ok(data) if data.claims.iat > now() + i64::try_from(leeway).unwrap() => Err(false),
        Ok(_) => Ok(()),
        Err(e) => Err(*e.kind() == jsonwebtoken::errors::ErrorKind::ExpiredSignature),
    }
}

/// Our verdict in the reference's terms; checks the refusal never echoes the token.
fn ours(service: &TokenService, token: &str) -> Result<(), bool> {
    match service.verify(token) {
        Ok(_) => Ok(()),
        Err(Error::Unauthenticated { reason }) => {
            assert!(
                token.len() < 4 || !reason.contains(token),
                "echoed: {reason}"
            );
            Err(reason == "token expired")
        }
        Err(other) => panic!("unexpected error kind: {other:?}"),
    }
}

fn sign(header_b64: &str, payload: &[u8], secret: &str) -> String {
    let message = format!("{header_b64}.{}", URL_SAFE_NO_PAD.encode(payload));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(message.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{message}.{signature}")
}

const CLAIMS: [&str; 9] = [
    "sub", "tid", "role", "jti", "iat", "nbf", "exp", "iss", "aud",
];
/// Time offsets from now away from the leeway's edges (30 s), so the clock cannot move a
/// verdict between the two verifiers.
const OFFSETS: [i64; 7] = [-3600, -45, -15, 0, 15, 45, 3600];
const WRONG_KINDS: [&str; 7] = ["null", "7", "\"x\"", "[1]", "{\"a\":1}", "1.5", "true"];

/// Valid claims with zero to three edits, each removing a claim, giving it a wrong kind, or
/// moving it (a time around the leeway, another role, issuer or audience): dense near the
/// edge between acceptance and refusal.
fn claims_strategy() -> impl Strategy<Value = Value> {
    proptest::collection::vec((0..CLAIMS.len(), 0..3usize, 0..OFFSETS.len()), 0..4).prop_map(
        |edits| {
            let mut claims = valid_claims();
            for (at, kind, pick) in edits {
                let name = CLAIMS[at];
                let value = match (kind, name) {
                    (0, _) => None,
                    (1, _) => serde_json::from_str(WRONG_KINDS[pick]).ok(),
                    (_, "iat" | "nbf" | "exp") => Some(json!(now() + OFFSETS[pick])),
                    (_, "role") => Some(json!(["owner", "admin", "member", "root"][pick % 4])),
                    (_, "sub" | "tid") => Some(json!(uuid::Uuid::nil())),
                    (_, _) => Some(json!(["", "tenant-manager", "other"][pick % 3])),
                };
                match (claims.as_object_mut(), value) {
                    (Some(map), Some(value)) => map.insert(name.to_owned(), value),
                    (Some(map), None) => map.remove(name),
                    (None, _) => None,
                };
            }
            claims
        },
    )
}

fn valid_claims() -> Value {
    let now = now();
    json!({
        "sub": UserId::new(), "tid": TenantId::new(), "role": "member", "jti": "j",
        "iat": now, "nbf": now, "exp": now + 600,
        "iss": "tenant-manager", "aud": "tenant-manager",
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Arbitrary bytes (made text lossily, as an HTTP header would arrive) are refused.
    #[test]
    fn arbitrary_bytes_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let service = service();
        let token = String::from_utf8_lossy(&bytes);
        prop_assert_eq!(ours(&service, &token), reference(service.config(), &token));
        prop_assert!(ours(&service, &token).is_err());
    }

    /// Strings shaped like tokens (base64url alphabet and dots) get jsonwebtoken's verdict.
    #[test]
    fn token_shaped_strings_match_the_reference(token in "[A-Za-z0-9_.=-]{0,300}") {
        let service = service();
        prop_assert_eq!(ours(&service, &token), reference(service.config(), &token));
    }

    /// One byte of an issued token replaced by any byte: the same verdict as the reference
    /// (base64's padding bits can make a change harmless; both must then agree).
    #[test]
    fn mutated_tokens_match_the_reference(position in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let service = service();
        let token = sign(HEADER, valid_claims().to_string().as_bytes(), SECRET);
        let mut bytes = token.into_bytes();
        let at = position.index(bytes.len());
        bytes[at] = byte;
        let mutated = String::from_utf8_lossy(&bytes).into_owned();
        prop_assert_eq!(ours(&service, &mutated), reference(service.config(), &mutated));
    }

    /// Any header bytes, correctly signed: only a header naming HS256 passes, as in the
    /// reference.
    #[test]
    fn arbitrary_headers_match_the_reference(header in proptest::collection::vec(any::<u8>(), 0..64)) {
        let service = service();
        let header_b64 = URL_SAFE_NO_PAD.encode(&header);
        let token = sign(&header_b64, valid_claims().to_string().as_bytes(), SECRET);
        prop_assert_eq!(ours(&service, &token), reference(service.config(), &token));
    }

    /// Arbitrary claim sets (each claim right, of a wrong kind, or missing; times around the
    /// leeway) signed with the right or a wrong key: the same verdict as the reference.
    #[test]
    fn arbitrary_claims_match_the_reference(claims in claims_strategy(), right_key in any::<bool>()) {
        let service = service();
        let secret = if right_key { SECRET } else { OTHER_SECRET };
        let token = sign(HEADER, claims.to_string().as_bytes(), secret);
        prop_assert_eq!(ours(&service, &token), reference(service.config(), &token));
    }

    /// Arbitrary payload bytes, correctly signed: never accepted unless they are claims.
    #[test]
    fn arbitrary_payloads_match_the_reference(payload in proptest::collection::vec(any::<u8>(), 0..256)) {
        let service = service();
        let token = sign(HEADER, &payload, SECRET);
        prop_assert_eq!(ours(&service, &token), reference(service.config(), &token));
    }
}

/// The strategies reach acceptance, expiry and other refusals, so the agreement above is
/// not agreement on refusals only.
#[test]
fn the_claims_strategy_reaches_every_verdict() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let service = service();
    let mut runner = TestRunner::deterministic();
    let (mut accepted, mut expired, mut refused) = (0, 0, 0);
    for _ in 0..2000 {
        let claims = claims_strategy().new_tree(&mut runner).unwrap().current();
        match ours(
            &service,
            &sign(HEADER, claims.to_string().as_bytes(), SECRET),
        ) {
            Ok(()) => accepted += 1,
            Err(true) => expired += 1,
            Err(false) => refused += 1,
        }
    }
    assert!(
        accepted > 0 && expired > 0 && refused > 0,
        "{accepted}/{expired}/{refused}"
    );
}
