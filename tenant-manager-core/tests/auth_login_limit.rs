//! The failed-login limit of `TenantManager::login`: N failures per window per e-mail address
//! (known or not), then `quota_exceeded` with a retry delay for that address only, right
//! password or not; the user's own successful logins do not count as failures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::{Harness, PASSWORD};
use tenant_manager_core::auth::{HasherConfig, PasswordHasher};
use tenant_manager_core::manager::{ManagerConfig, TenantManager};
use tenant_manager_core::{Error, RateLimit};

fn limited(failures: u64) -> Harness {
    let rate = RateLimit::new(failures, Duration::from_secs(3600)).unwrap();
    Harness::with(
        ManagerConfig::default().with_login_failures(Some(rate)),
        None,
    )
}

#[track_caller]
fn assert_limited(err: &Error, failures: u64) {
    match err {
        Error::QuotaExceeded {
            quota,
            limit,
            retry_after,
        } => {
            assert_eq!(quota, "login_failures");
            assert_eq!(*limit, failures);
            assert!(*retry_after >= Duration::from_secs(1), "{retry_after:?}");
            assert!(*retry_after <= Duration::from_secs(3600), "{retry_after:?}");
        }
        other => panic!("expected quota_exceeded, got {other:?}"),
    }
    assert!(err.is_retryable());
}

/// `count` logins of `email` with a wrong password, each answered `unauthenticated`.
async fn fail_logins(h: &Harness, email: &str, count: usize) {
    for _ in 0..count {
        let err = h.manager.login(email, "Wrong123!").await.unwrap_err();
        assert_eq!(err.code(), "unauthenticated");
    }
}

/// The error of a login of `email` with the right password.
async fn right_password_error(h: &Harness, email: &str) -> Error {
    h.manager.login(email, PASSWORD).await.unwrap_err()
}

#[tokio::test]
async fn after_n_failures_even_the_right_password_is_refused_for_that_address_only() {
    let h = limited(3);
    h.register("Acme", "owner@acme.test").await;
    h.register("Other", "owner@other.test").await;
    fail_logins(&h, "owner@acme.test", 3).await;
    assert_limited(&right_password_error(&h, "owner@acme.test").await, 3);
    let err = h
        .manager
        .login("Owner@ACME.test", "Wrong123!")
        .await
        .unwrap_err();
    assert_limited(&err, 3);
    // Another account is not affected.
    assert!(h.manager.login("owner@other.test", PASSWORD).await.is_ok());
    assert!(h.manager.login("owner@other.test", PASSWORD).await.is_ok());
}

#[tokio::test]
async fn unknown_addresses_are_limited_the_same_way() {
    let h = limited(2);
    h.register("Acme", "owner@acme.test").await;
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..3 {
        known.push(
            h.manager
                .login("owner@acme.test", "Wrong123!")
                .await
                .unwrap_err(),
        );
        unknown.push(
            h.manager
                .login("nobody@acme.test", "Wrong123!")
                .await
                .unwrap_err(),
        );
    }
    // Same answers, in the same order: the limit tells nothing about which accounts exist.
    for (k, u) in known.iter().zip(&unknown) {
        assert_eq!(k.code(), u.code());
        assert_eq!(k.to_string(), u.to_string());
    }
    assert_eq!(known[1].code(), "unauthenticated");
    assert_limited(&known[2], 2);
    assert_limited(&unknown[2], 2);
}

#[tokio::test]
async fn a_users_own_successful_logins_do_not_use_up_the_failures() {
    let h = limited(2);
    h.register("Acme", "owner@acme.test").await;
    for _ in 0..200 {
        h.manager.login("owner@acme.test", PASSWORD).await.unwrap();
    }
    // Still two failures allowed, then the limit.
    fail_logins(&h, "owner@acme.test", 2).await;
    assert_limited(&right_password_error(&h, "owner@acme.test").await, 2);
}

#[tokio::test]
async fn without_a_limit_failures_never_lock_an_address() {
    let h = Harness::with(ManagerConfig::default().with_login_failures(None), None);
    h.register("Acme", "owner@acme.test").await;
    fail_logins(&h, "owner@acme.test", 25).await;
    assert!(h.manager.login("owner@acme.test", PASSWORD).await.is_ok());
}

#[tokio::test]
async fn the_default_allows_ten_failures_per_fifteen_minutes() {
    assert_eq!(
        ManagerConfig::default().login_failures,
        Some(RateLimit {
            limit: 10,
            window_ms: 900_000
        })
    );
    let h = Harness::new();
    h.register("Acme", "owner@acme.test").await;
    fail_logins(&h, "owner@acme.test", 10).await;
    assert_limited(&right_password_error(&h, "owner@acme.test").await, 10);
    for bad in [0, 1001] {
        let config = ManagerConfig::default().with_login_failures(Some(RateLimit {
            limit: bad,
            window_ms: 60_000,
        }));
        assert_eq!(
            config.validate().unwrap_err().field(),
            Some("login_failures")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_guesses_get_at_most_n_plus_the_hashing_threads_through() {
    const FAILURES: u64 = 3;
    let h = limited(FAILURES);
    h.register("Acme", "owner@acme.test").await;
    let hasher = PasswordHasher::new(
        HasherConfig::default()
            .with_params(1024, 1, 1)
            .with_max_concurrent(1)
            .with_queue_wait(Duration::from_secs(30)),
    )
    .unwrap();
    let threads = hasher.threads() as u64;
    let manager = TenantManager::builder()
        .with_registry(h.registry.clone())
        .with_provisioner(Arc::clone(&h.provisioner))
        .with_quota(h.quota.clone())
        .with_hasher(hasher.clone())
        .with_tokens(support::tokens())
        .with_config(h.manager.config().clone())
        .build()
        .unwrap();
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let manager = manager.clone();
            tokio::spawn(async move {
                manager
                    .login("owner@acme.test", &format!("Guess-{i}!"))
                    .await
                    .unwrap_err()
            })
        })
        .collect();
    let (mut checked, mut limited) = (0, 0);
    for task in tasks {
        match task.await.unwrap().code() {
            "unauthenticated" => checked += 1,
            "quota_exceeded" => limited += 1,
            other => panic!("unexpected {other}"),
        }
    }
    // Guesses actually verified: the answered failures, and at most one per hashing thread
    // that passed the budget before a concurrent failure was counted.
    let verified = hasher.stats().completed;
    assert!(
        checked >= FAILURES,
        "{checked} guesses answered unauthenticated"
    );
    assert!(verified >= checked);
    assert!(
        verified <= FAILURES + threads,
        "{verified} guesses verified"
    );
    assert_eq!(checked + limited, 32);
}
