//! The password hasher: stored hashes of every earlier release still verify, and a hash that
//! finds no thread free within the wait is shed with a retryable error. (The thread count is
//! checked in `auth_hash_thread_count.rs`, a process of its own.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use argon2::PasswordHasher as _;
use tenant_manager_core::PasswordHash;
use tenant_manager_core::auth::{HasherConfig, PasswordHasher};

#[tokio::test]
async fn hashes_made_before_the_thread_pool_still_verify_and_are_upgraded() {
    let hasher = support::pooled_hasher(1, Duration::from_secs(60));
    // Made by the argon2 crate's own hasher, as the previous release stored them.
    let legacy = |m: u32, t: u32| {
        let params = argon2::Params::new(m, t, 1, None).unwrap();
        argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password(b"Test123!")
            .unwrap()
            .to_string()
    };
    let same_costs = PasswordHash::from_phc(legacy(1024, 1));
    assert!(hasher.verify("Test123!", &same_costs).await.unwrap());
    assert!(!hasher.verify("Test123?", &same_costs).await.unwrap());
    assert!(!hasher.needs_rehash(&same_costs));
    // A stored hash with a larger memory cost than the buffer gets memory of its own once.
    let bigger = PasswordHash::from_phc(legacy(4096, 1));
    assert!(hasher.verify("Test123!", &bigger).await.unwrap());
    assert!(hasher.needs_rehash(&bigger));
    assert_eq!(hasher.stats().oversize_allocations, 1);
    // A smaller one uses part of the buffer.
    let smaller = PasswordHash::from_phc(legacy(256, 2));
    assert!(hasher.verify("Test123!", &smaller).await.unwrap());
    assert_eq!(hasher.stats().oversize_allocations, 1);
    assert_eq!(hasher.stats().buffers_allocated, 1);
    // A literal OWASP hash of the previous release.
    let owasp = PasswordHasher::new(HasherConfig::default().with_max_concurrent(1)).unwrap();
    let stored = PasswordHash::from_phc(LEGACY_OWASP_PHC);
    assert!(owasp.verify("Test123!", &stored).await.unwrap());
    assert!(!owasp.verify("Test1234", &stored).await.unwrap());
    assert!(!owasp.needs_rehash(&stored));
    // And the new hashes verify with the argon2 crate's own verifier.
    let fresh = hasher.hash("Test123!").await.unwrap();
    let parsed = argon2::PasswordHash::new(fresh.as_phc()).unwrap();
    use argon2::PasswordVerifier as _;
    assert!(
        argon2::Argon2::default()
            .verify_password(b"Test123!", &parsed)
            .is_ok()
    );
}

/// `Test123!` hashed with the OWASP parameters by the `argon2` crate's own hasher, the code
/// path of the previous release.
const LEGACY_OWASP_PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$7UZzg38b/WzVPkDaDhGxsQ$KO/+0q5yWE1zOap5Mk6RAyndLc0CQIaxw//w47hlikQ";

#[tokio::test]
async fn no_free_thread_within_the_wait_sheds_with_a_retryable_error() {
    let hasher = support::pooled_hasher(1, Duration::from_millis(50));
    assert_eq!(hasher.threads(), 1);
    // Hold the only thread.
    let mut slot = hasher.reserve().await.unwrap();
    assert_eq!(hasher.stats().available, 0);
    let err = hasher.hash("Test123!").await.unwrap_err();
    assert_eq!(err.code(), "backend_unavailable");
    assert!(err.is_retryable());
    assert!(err.to_string().contains("password_hasher"), "{err}");
    let err = hasher.verify_or_dummy("Test123!", None).await.unwrap_err();
    assert_eq!(err.code(), "backend_unavailable");
    assert_eq!(hasher.stats().shed, 2);
    // The slot still does its work, keeps the thread until dropped, and then it is free.
    assert!(!slot.verify_or_dummy("Test123!", None).await.unwrap());
    assert_eq!(hasher.stats().available, 0);
    drop(slot);
    let hash = hasher.hash("Test123!").await.unwrap();
    assert!(hasher.verify("Test123!", &hash).await.unwrap());
    assert_eq!(hasher.stats().shed, 2);
    assert_eq!(hasher.stats().available, 1);
}

#[tokio::test]
async fn a_caller_that_gives_up_does_not_lose_the_thread() {
    let slow = PasswordHasher::new(HasherConfig::default().with_max_concurrent(1)).unwrap();
    // Dropped while waiting for its answer: the work finishes and the thread is given back.
    let _ = tokio::time::timeout(Duration::from_millis(1), slow.hash("Test123!")).await;
    let hash = slow.hash("Test123!").await.unwrap();
    assert!(slow.verify("Test123!", &hash).await.unwrap());
    assert_eq!(slow.stats().available, 1);
}
