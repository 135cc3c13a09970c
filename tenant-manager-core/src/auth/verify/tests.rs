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
    let verifier = TokenVerifier::new(key, ISSUED.to_owned(), "iss".into(), "aud".into(), LEEWAY);
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
