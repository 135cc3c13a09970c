//! The failed-login limit of `TenantManager::login` holds across instances when they share
//! Redis: two managers (one registry, each with its own Redis pool under one prefix) count the
//! same e-mail address's failures together.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use tenant_manager_core::auth::{HasherConfig, JwtConfig, PasswordHasher, TokenService};
use tenant_manager_core::manager::{ManagerConfig, Registration, TenantManager};
use tenant_manager_core::memory::{InMemoryProvisioner, InMemoryRegistry, InMemoryTenantData};
use tenant_manager_core::{Error, RateLimit};
use tenant_manager_redis::RedisQuotaEnforcer;
use tenant_manager_test_support::TestRedis;

const PASSWORD: &str = "Test123!";

async fn instance(
    redis: &TestRedis,
    registry: &Arc<InMemoryRegistry>,
    provisioner: &Arc<InMemoryProvisioner>,
) -> TenantManager {
    let pool = support::pool(redis).await;
    let hasher =
        PasswordHasher::new(HasherConfig::default().with_params(256, 1, 1)).expect("hasher");
    let tokens = TokenService::new(JwtConfig::hs256(
        "0123456789abcdef0123456789abcdef-test-only",
    ))
    .expect("tokens");
    let failures = RateLimit::new(3, Duration::from_secs(3600)).expect("rate");
    TenantManager::builder()
        .with_registry(registry.clone())
        .with_provisioner(provisioner.clone())
        .with_quota(Arc::new(RedisQuotaEnforcer::new(&pool)))
        .with_hasher(hasher)
        .with_tokens(tokens)
        .with_config(ManagerConfig::default().with_login_failures(Some(failures)))
        .build()
        .expect("manager")
}

#[tokio::test]
async fn failures_on_one_instance_lock_the_address_on_the_other() {
    let redis = TestRedis::create().await;
    let registry = Arc::new(InMemoryRegistry::new());
    let provisioner = Arc::new(InMemoryProvisioner::new(
        Arc::new(InMemoryTenantData::new()),
    ));
    let one = instance(&redis, &registry, &provisioner).await;
    let two = instance(&redis, &registry, &provisioner).await;
    one.register_organization(Registration::new("Acme", "owner@acme.test", PASSWORD))
        .await
        .expect("register");
    two.register_organization(Registration::new("Other", "owner@other.test", PASSWORD))
        .await
        .expect("register");

    for manager in [&one, &two, &one] {
        let err = manager
            .login("owner@acme.test", "Wrong123!")
            .await
            .unwrap_err();
        assert_eq!(err.code(), "unauthenticated");
    }
    for manager in [&two, &one] {
        match manager
            .login("owner@acme.test", PASSWORD)
            .await
            .unwrap_err()
        {
            Error::QuotaExceeded {
                quota, retry_after, ..
            } => {
                assert_eq!(quota, "login_failures");
                assert!(retry_after >= Duration::from_secs(1));
            }
            other => panic!("expected quota_exceeded, got {other:?}"),
        }
    }
    // The other account logs in on both instances.
    assert!(one.login("owner@other.test", PASSWORD).await.is_ok());
    assert!(two.login("owner@other.test", PASSWORD).await.is_ok());
}
