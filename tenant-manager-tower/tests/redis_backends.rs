//! The request path on the production backends: tenant records cached in the real Redis and
//! rate limits counted by the Redis enforcer, and what an unreachable Redis does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Echo, World, get_as, get_bearer, jwt_layer, send};
use http::header::RETRY_AFTER;
use tenant_manager_core::lookup::TenantLookup;
use tenant_manager_core::{
    QuotaEnforcer, RateLimit, Role, Tenant, TenantCache, TenantRegistry, TenantStatus,
};
use tenant_manager_redis::{
    RedisConfig, RedisPool, RedisQuotaEnforcer, RedisTenantCache, TenantCacheConfig,
};
use tenant_manager_test_support::TestRedis;
use tenant_manager_tower::{
    FailMode, QuotaConfig, QuotaLayer, RATELIMIT_LIMIT, RATELIMIT_REMAINING,
};
use tower::ServiceBuilder;

async fn pool(url: &str, prefix: &str) -> RedisPool {
    RedisPool::connect(
        RedisConfig::new(url)
            .with_key_prefix(prefix)
            .with_pool_size(2)
            .with_blocking_pool_size(1)
            .with_connect_timeout(Duration::from_millis(500))
            .with_command_timeout(Duration::from_secs(2)),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_cached_and_rate_limited_in_redis() {
    let redis = TestRedis::create().await;
    let pool = pool(redis.url(), redis.prefix()).await;
    let world = World::new();
    let cache: Arc<dyn TenantCache> = Arc::new(
        RedisTenantCache::new(&pool, TenantCacheConfig::default())
            .await
            .unwrap(),
    );
    let lookup = TenantLookup::new(world.registry.clone() as Arc<dyn TenantRegistry>, cache);
    let quota: Arc<dyn QuotaEnforcer> = Arc::new(RedisQuotaEnforcer::new(&pool));
    let service = ServiceBuilder::new()
        .layer(jwt_layer(&lookup, &world.tokens))
        .layer(
            QuotaLayer::new(
                quota,
                QuotaConfig::default().with_rate_policy(|_: &Tenant| {
                    RateLimit::new(3, Duration::from_secs(3600)).unwrap()
                }),
            )
            .unwrap(),
        )
        .service(Echo::default().service());

    let tenant = world.tenant("acme", TenantStatus::Active).await;
    let (token, _) = world.token(&tenant, Role::Member);
    for remaining in ["2", "1", "0"] {
        let (status, headers, body) = send(service.clone(), get_bearer("/", &token)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(headers.get(&RATELIMIT_LIMIT).unwrap(), "3");
        assert_eq!(headers.get(&RATELIMIT_REMAINING).unwrap(), remaining);
    }
    let (status, headers, _) = send(service.clone(), get_bearer("/", &token)).await;
    assert_eq!(status, 429);
    assert!(headers.contains_key(RETRY_AFTER));

    // Suspension reaches the layer through the Redis cache's invalidation.
    world
        .registry
        .transition(tenant.id, TenantStatus::Suspended, None)
        .await
        .unwrap();
    lookup.invalidate(tenant.id).await.unwrap();
    let (status, _, body) = send(service, get_bearer("/", &token)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("tenant_suspended"))
    );
}

#[tokio::test]
async fn an_unreachable_redis_fails_open_or_closed_as_configured() {
    let world = World::new();
    let tenant = world.tenant("acme", TenantStatus::Active).await;
    // Nothing listens on port 1: every check reports the enforcer unavailable.
    let pool = pool("redis://127.0.0.1:1", "tmtest:unreachable:").await;
    let quota: Arc<dyn QuotaEnforcer> = Arc::new(RedisQuotaEnforcer::new(&pool));
    for (mode, status) in [(FailMode::Open, 200), (FailMode::Closed, 503)] {
        let echo = Echo::default();
        let service = ServiceBuilder::new()
            .layer(
                QuotaLayer::new(quota.clone(), QuotaConfig::default().with_fail_mode(mode))
                    .unwrap(),
            )
            .service(echo.service());
        let (got, _, body) = send(service, get_as(&tenant)).await;
        assert_eq!(got, status, "{mode:?}: {body}");
        assert_eq!(echo.calls(), usize::from(status == 200), "{mode:?}");
    }
}
