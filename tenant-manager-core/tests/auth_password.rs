//! `PasswordHasher` and `PasswordPolicy`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use support::cheap_hasher;
use tenant_manager_core::auth::{HasherConfig, MAX_PASSWORD_BYTES, PasswordHasher, PasswordPolicy};
use tenant_manager_core::{Email, PasswordHash};

#[tokio::test]
async fn hashes_verify_and_salts_differ() {
    let hasher = cheap_hasher();
    let a = hasher.hash("Test123!").await.unwrap();
    let b = hasher.hash("Test123!").await.unwrap();
    assert!(
        a.as_phc().starts_with("$argon2id$v=19$m=256,t=1,p=1$"),
        "{}",
        a.as_phc()
    );
    assert_ne!(a, b);
    assert!(hasher.verify("Test123!", &a).await.unwrap());
    assert!(hasher.verify("Test123!", &b).await.unwrap());
    assert!(!hasher.verify("test123!", &a).await.unwrap());
    assert!(!hasher.verify("", &a).await.unwrap());
    assert!(!hasher.verify_or_dummy("Test123!", None).await.unwrap());
    assert!(hasher.verify_or_dummy("Test123!", Some(&a)).await.unwrap());
    assert!(!format!("{a:?}").contains("argon2id"));
}

#[tokio::test]
async fn the_default_is_owasp_argon2id() {
    let hasher = PasswordHasher::new(HasherConfig::default()).unwrap();
    let hash = hasher.hash("Test123!").await.unwrap();
    assert!(
        hash.as_phc().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{}",
        hash.as_phc()
    );
    assert!(hasher.verify("Test123!", &hash).await.unwrap());
    assert!(!hasher.needs_rehash(&hash));
    // A hash made with other costs still verifies, and is flagged for a rehash.
    let old = cheap_hasher().hash("Test123!").await.unwrap();
    assert!(hasher.verify("Test123!", &old).await.unwrap());
    assert!(hasher.needs_rehash(&old));
}

#[tokio::test]
async fn over_long_passwords_are_refused_or_never_match() {
    let hasher = cheap_hasher();
    let long = "a".repeat(MAX_PASSWORD_BYTES + 1);
    let err = hasher.hash(&long).await.unwrap_err();
    assert_eq!(err.field(), Some("password"));
    let hash = hasher.hash(&long[..MAX_PASSWORD_BYTES]).await.unwrap();
    // Its first MAX_PASSWORD_BYTES bytes match, but the longer input does not.
    assert!(
        hasher
            .verify(&long[..MAX_PASSWORD_BYTES], &hash)
            .await
            .unwrap()
    );
    assert!(!hasher.verify(&long, &hash).await.unwrap());
}

#[tokio::test]
async fn corrupted_stored_hashes_are_internal_errors() {
    let hasher = cheap_hasher();
    for phc in [
        "",
        "plain text",
        "$argon2id$v=19$m=256,t=1,p=1$",
        "$2b$12$abcdefghijklmnopqrstuv",
    ] {
        let err = hasher
            .verify("Test123!", &PasswordHash::from_phc(phc))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "internal", "{phc:?}");
        assert!(hasher.needs_rehash(&PasswordHash::from_phc(phc)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_hashes_all_complete_behind_the_bound() {
    let hasher = Arc::new(
        PasswordHasher::new(
            HasherConfig::default()
                .with_params(256, 1, 1)
                .with_max_concurrent(2),
        )
        .unwrap(),
    );
    support::hash_and_verify_concurrently(&hasher, 32).await;
    // Every thread is free again, and each allocated its buffer at most once.
    let stats = hasher.stats();
    assert_eq!(stats.available, stats.threads);
    assert!(stats.threads <= 2);
    assert!(
        (1..=stats.threads as u64).contains(&stats.buffers_allocated),
        "{stats:?}"
    );
    assert_eq!(stats.completed, 64);
}

#[test]
fn bad_hasher_configurations_are_refused() {
    let err = PasswordHasher::new(HasherConfig::default().with_params(1, 1, 1)).unwrap_err();
    assert_eq!(err.field(), Some("hasher_params"));
    let err = PasswordHasher::new(HasherConfig::default().with_params(256, 0, 1)).unwrap_err();
    assert_eq!(err.field(), Some("hasher_params"));
    for n in [0, 1025] {
        let err = PasswordHasher::new(HasherConfig::default().with_max_concurrent(n)).unwrap_err();
        assert_eq!(err.field(), Some("hasher_max_concurrent"));
    }
    let err = PasswordHasher::new(
        HasherConfig::default().with_queue_wait(std::time::Duration::from_secs(61)),
    )
    .unwrap_err();
    assert_eq!(err.field(), Some("hasher_queue_wait"));
}

#[test]
fn the_policy_names_the_field_and_the_rule() {
    let policy = PasswordPolicy::default();
    let email = Email::new("someone@acme.test").unwrap();
    for (password, rule) in [
        ("", "at least 8"),
        ("Ab1!Ab1", "at least 8"),
        (&"Ab1!".repeat(33), "at most 128"),
        ("lowercaseonly", "at least 3 of"),
        ("UPPER123", "at least 3 of"),
        ("Ab1!\u{1b}[0m", "control"),
        ("Someone@Acme.test", "e-mail"),
    ] {
        let err = policy
            .check(password, Some(&email), "admin_password")
            .unwrap_err();
        assert_eq!(err.field(), Some("admin_password"));
        assert!(err.to_string().contains(rule), "{password:?}: {err}");
    }
    for ok in [
        "Test123!",
        "correct horse battery staple",
        "Ünïcødé-Pässwörd-1",
        "密码密码Aa1!",
    ] {
        policy.check(ok, Some(&email), "password").unwrap();
    }
}
