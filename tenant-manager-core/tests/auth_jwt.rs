//! `TokenService`: what it issues verifies, and everything else is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tenant_manager_core::auth::{Claims, JwtAlgorithm, JwtConfig, TokenService};
use tenant_manager_core::{Email, Error, PasswordHash, Role, TenantId, User, UserId};
use time::OffsetDateTime;

const SECRET: &str = "an-hs256-secret-of-at-least-32-bytes!";

// Ed25519 key pairs made for these tests only.
const ED_PRIVATE_A: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIC72YtsNZEUywOK6Z7fhl8XC68EDJunJoNlx0g0sujHp
-----END PRIVATE KEY-----
";
const ED_PUBLIC_A: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEA/Hev4CSAEvp4DGWHKa9E7io6ci2yImjfXx5Bg7IEj5E=
-----END PUBLIC KEY-----
";
const ED_PUBLIC_B: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAYIDpWRD2RQhjj13c/kupWyuSOa4xjZLqmt324AASCyo=
-----END PUBLIC KEY-----
";

fn user() -> User {
    User {
        id: UserId::new(),
        tenant_id: TenantId::new(),
        email: Email::new("owner@acme.test").unwrap(),
        role: Role::Admin,
        password_hash: PasswordHash::from_phc("$argon2id$unused"),
        created_at: OffsetDateTime::now_utc(),
    }
}

fn hs256() -> TokenService {
    TokenService::new(JwtConfig::hs256(SECRET)).unwrap()
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Valid claims as JSON, for hand-made tokens.
fn claims_json(config: &JwtConfig) -> Value {
    let now = now();
    json!({
        "sub": UserId::new(), "tid": TenantId::new(), "role": "member",
        "jti": uuid::Uuid::new_v4().to_string(),
        "iat": now, "nbf": now, "exp": now + 600,
        "iss": config.issuer, "aud": config.audience,
    })
}

fn sign_hs256(claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn assert_refused(service: &TokenService, token: &str) {
    match service.verify(token) {
        Err(Error::Unauthenticated { reason }) => {
            assert!(token.len() < 4 || !reason.contains(token));
            assert!(
                reason == "invalid token" || reason == "token expired",
                "{reason}"
            );
        }
        other => panic!("token accepted or wrong error: {other:?}"),
    }
}

#[test]
fn issued_tokens_verify_with_every_claim() {
    let service = hs256();
    let user = user();
    let issued = service.issue(&user).unwrap();
    assert_eq!(issued.expires_in, Duration::from_secs(3600));
    let claims: Claims = service.verify(issued.access_token.expose()).unwrap();
    assert_eq!(claims, issued.claims);
    assert_eq!(
        (claims.sub, claims.tid, claims.role),
        (user.id, user.tenant_id, Role::Admin)
    );
    assert_eq!(claims.exp - claims.iat, 3600);
    assert_eq!(claims.iss, "tenant-manager");
    assert_eq!(
        uuid::Uuid::parse_str(&claims.jti)
            .unwrap()
            .get_version_num(),
        4
    );
    let other = service.issue(&user).unwrap();
    assert_ne!(other.claims.jti, claims.jti);
    service.self_test().unwrap();
}

#[test]
fn forged_and_tampered_tokens_are_refused() {
    let service = hs256();
    let config = service.config().clone();
    assert_refused(
        &service,
        &sign_hs256(
            &claims_json(&config),
            b"another-secret-of-at-least-32-bytes",
        ),
    );

    let issued = service.issue(&user()).unwrap();
    let token = issued.access_token.expose();
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload["role"] = json!("owner");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap()),
        parts[2]
    );
    assert_refused(&service, &tampered);
}

#[test]
fn expired_not_yet_valid_and_future_issued_tokens_are_refused() {
    let service =
        TokenService::new(JwtConfig::hs256(SECRET).with_leeway(Duration::from_secs(5))).unwrap();
    let config = service.config().clone();
    let mut expired = claims_json(&config);
    expired["iat"] = json!(now() - 7200);
    expired["nbf"] = json!(now() - 7200);
    expired["exp"] = json!(now() - 3600);
    let token = sign_hs256(&expired, SECRET.as_bytes());
    assert!(matches!(
        service.verify(&token),
        Err(Error::Unauthenticated { reason }) if reason == "token expired"
    ));

    let mut early = claims_json(&config);
    early["nbf"] = json!(now() + 600);
    assert_refused(&service, &sign_hs256(&early, SECRET.as_bytes()));

    let mut future = claims_json(&config);
    future["iat"] = json!(now() + 600);
    assert_refused(&service, &sign_hs256(&future, SECRET.as_bytes()));

    // Within the leeway is fine.
    let mut skewed = claims_json(&config);
    skewed["iat"] = json!(now() + 2);
    assert!(
        service
            .verify(&sign_hs256(&skewed, SECRET.as_bytes()))
            .is_ok()
    );
}

#[test]
fn wrong_audience_issuer_or_missing_claims_are_refused() {
    let service = hs256();
    let config = service.config().clone();
    let mut aud = claims_json(&config);
    aud["aud"] = json!("another-service");
    assert_refused(&service, &sign_hs256(&aud, SECRET.as_bytes()));

    let mut iss = claims_json(&config);
    iss["iss"] = json!("https://evil.example");
    assert_refused(&service, &sign_hs256(&iss, SECRET.as_bytes()));

    for claim in [
        "exp", "nbf", "iat", "iss", "aud", "sub", "tid", "role", "jti",
    ] {
        let mut missing = claims_json(&config);
        missing.as_object_mut().unwrap().remove(claim);
        assert_refused(&service, &sign_hs256(&missing, SECRET.as_bytes()));
    }
    let mut bad_role = claims_json(&config);
    bad_role["role"] = json!("superuser");
    assert_refused(&service, &sign_hs256(&bad_role, SECRET.as_bytes()));

    // A token of another deployment (same secret, other issuer and audience).
    let other = TokenService::new(
        JwtConfig::hs256(SECRET)
            .with_issuer("other")
            .with_audience("other-api"),
    )
    .unwrap();
    let token = other.issue(&user()).unwrap();
    assert_refused(&service, token.access_token.expose());
}

#[test]
fn alg_none_and_other_algorithms_are_refused() {
    let service = hs256();
    let config = service.config().clone();
    let claims = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims_json(&config)).unwrap());
    for alg in ["none", "None", "NONE"] {
        let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
        assert_refused(&service, &format!("{header}.{claims}."));
        assert_refused(&service, &format!("{header}.{claims}"));
    }
    let hs512 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS512),
        &claims_json(&config),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    assert_refused(&service, &hs512);
}

#[test]
fn eddsa_tokens_verify_and_hs256_tokens_do_not() {
    let service = TokenService::new(JwtConfig::eddsa(ED_PRIVATE_A, ED_PUBLIC_A)).unwrap();
    let issued = service.issue(&user()).unwrap();
    let header = jsonwebtoken::decode_header(issued.access_token.expose()).unwrap();
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert_eq!(
        service.verify(issued.access_token.expose()).unwrap(),
        issued.claims
    );

    let config = service.config().clone();
    // The classic key-confusion attack: HS256 with the public key as the HMAC secret.
    assert_refused(
        &service,
        &sign_hs256(&claims_json(&config), ED_PUBLIC_A.as_bytes()),
    );
    assert_refused(
        &service,
        &sign_hs256(&claims_json(&config), SECRET.as_bytes()),
    );
    // And an HS256 service refuses EdDSA tokens.
    assert_refused(&hs256(), issued.access_token.expose());
}

#[test]
fn garbage_is_refused_without_echo() {
    let service = hs256();
    for token in [
        "",
        "abc",
        "a.b.c",
        "..",
        "Bearer x.y.z",
        "ü.ö.ä",
        &"a".repeat(10_000),
    ] {
        assert_refused(&service, token);
    }
    let issued = service.issue(&user()).unwrap();
    let err = service
        .verify(&format!("{}x", issued.access_token.expose()))
        .unwrap_err();
    assert!(!err.to_string().contains(issued.access_token.expose()));
}

#[test]
fn bad_configurations_are_refused_by_field() {
    let short = "x".repeat(31);
    let err = TokenService::new(JwtConfig::hs256(short.as_str())).unwrap_err();
    assert_eq!(err.field(), Some("jwt_secret"));
    assert!(TokenService::new(JwtConfig::hs256("x".repeat(32))).is_ok());
    assert_eq!(
        TokenService::new(JwtConfig::default()).unwrap_err().field(),
        Some("jwt_secret")
    );
    for (config, field) in [
        (JwtConfig::hs256(SECRET).with_issuer(""), "jwt_issuer"),
        (
            JwtConfig::hs256(SECRET).with_audience("a\u{0}b"),
            "jwt_audience",
        ),
        (JwtConfig::hs256(SECRET).with_ttl(Duration::ZERO), "jwt_ttl"),
        (
            JwtConfig::hs256(SECRET).with_ttl(Duration::from_secs(31 * 24 * 3600)),
            "jwt_ttl",
        ),
        (
            JwtConfig::hs256(SECRET).with_leeway(Duration::from_secs(600)),
            "jwt_leeway",
        ),
        (
            JwtConfig::eddsa("not a pem", ED_PUBLIC_A),
            "jwt_private_key",
        ),
        (
            JwtConfig::eddsa(ED_PRIVATE_A, "not a pem"),
            "jwt_public_key",
        ),
        (
            JwtConfig::eddsa(ED_PRIVATE_A, ED_PUBLIC_B),
            "jwt_public_key",
        ),
    ] {
        assert_eq!(TokenService::new(config).unwrap_err().field(), Some(field));
    }
}

#[test]
fn debug_output_never_shows_a_secret() {
    let hs = JwtConfig::hs256(SECRET);
    let ed = JwtConfig::eddsa(ED_PRIVATE_A, ED_PUBLIC_A);
    let service = TokenService::new(hs.clone()).unwrap();
    let issued = service.issue(&user()).unwrap();
    let algorithm = JwtAlgorithm::Hs256 {
        secret: SECRET.into(),
    };
    for shown in [
        format!("{hs:?}"),
        format!("{service:?}"),
        format!("{algorithm:?}"),
        format!("{ed:?}"),
        format!("{issued:?}"),
    ] {
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(!shown.contains("MC4CAQAw"), "{shown}");
        assert!(!shown.contains(issued.access_token.expose()), "{shown}");
    }
}
