//! `RedisTenantCache` against the real Redis: the single- and two-instance conformance suites,
//! the local layer, and refusal of a suspended tenant by another instance.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use tenant_manager_core::testing::Fixture;
use tenant_manager_core::testing::cache::{CacheCaps, CachePair, sample_tenant};
use tenant_manager_core::{CacheKey, TenantCache, TenantStatus};
use tenant_manager_redis::{RedisPool, RedisTenantCache, TenantCacheConfig};
use tenant_manager_test_support::TestRedis;

const TTL: Duration = Duration::from_secs(2);

fn config() -> TenantCacheConfig {
    TenantCacheConfig::default()
        .with_ttl(TTL)
        .with_local_ttl(TTL)
        .with_ping_interval(Duration::from_millis(200))
}

async fn cache(pool: &RedisPool) -> RedisTenantCache {
    let cache = RedisTenantCache::new(pool, config()).await.expect("cache");
    assert!(
        cache.wait_subscribed(Duration::from_secs(5)).await,
        "subscribed"
    );
    cache
}

async fn fixture() -> Fixture<dyn TenantCache> {
    let redis = TestRedis::create().await;
    let pool = support::pool(&redis).await;
    let subject: Arc<dyn TenantCache> = Arc::new(cache(&pool).await);
    Fixture::with_guard(subject, redis).with_caps(CacheCaps::new(TTL))
}

/// Two instances, as two processes would have: separate pools, one Redis, one prefix.
async fn pair() -> Fixture<CachePair> {
    let redis = TestRedis::create().await;
    let a = cache(&support::pool(&redis).await).await;
    let b = cache(&support::pool(&redis).await).await;
    let pair = CachePair {
        a: Arc::new(a),
        b: Arc::new(b),
    };
    Fixture::with_guard(Arc::new(pair), redis).with_caps(CacheCaps::new(TTL))
}

tenant_manager_core::cache_conformance!(fixture);

mod pair {
    use super::pair;
    tenant_manager_core::cache_pair_conformance!(pair);
}

#[tokio::test]
async fn repeated_lookups_are_served_locally() {
    let redis = TestRedis::create().await;
    let cache = cache(&support::pool(&redis).await).await;
    let t = sample_tenant();
    cache.put(&t).await.expect("put");
    for key in [CacheKey::Id(t.id), CacheKey::Slug(t.slug.clone())] {
        for _ in 0..3 {
            assert_eq!(cache.get(&key).await.expect("get").as_ref(), Some(&t));
        }
    }
    let domain = t.domain.clone().expect("domain").to_ascii_uppercase();
    assert_eq!(
        cache
            .get(&CacheKey::Domain(domain))
            .await
            .expect("get")
            .as_ref(),
        Some(&t),
        "domains are case-insensitive"
    );
    let stats = cache.detailed_stats();
    assert!(stats.subscribed);
    assert_eq!(stats.misses, 0);
    // The slug and domain aliases needed Redis once each; everything else was local.
    assert_eq!((stats.local_hits, stats.redis_hits), (5, 2), "{stats:?}");
    assert_eq!(cache.stats().hits, 7);
}

#[tokio::test]
async fn without_the_local_layer_every_hit_is_served_by_redis() {
    let redis = TestRedis::create().await;
    let pool = support::pool(&redis).await;
    let cache = RedisTenantCache::new(&pool, config().with_local_layer(false))
        .await
        .expect("cache");
    assert!(cache.wait_subscribed(Duration::from_secs(5)).await);
    let t = sample_tenant();
    cache.put(&t).await.expect("put");
    for _ in 0..3 {
        assert_eq!(
            cache.get(&CacheKey::Id(t.id)).await.expect("get").as_ref(),
            Some(&t)
        );
    }
    let stats = cache.detailed_stats();
    assert_eq!((stats.local_hits, stats.redis_hits), (0, 3), "{stats:?}");
}

#[tokio::test]
async fn a_suspended_tenant_is_refused_by_every_instance_within_a_second() {
    let redis = TestRedis::create().await;
    let instances: Vec<RedisTenantCache> = futures::future::join_all(
        (0..3).map(|_| async { cache(&support::pool(&redis).await).await }),
    )
    .await;
    let mut tenant = sample_tenant();
    tenant.status = TenantStatus::Active;
    instances[0].put(&tenant).await.expect("put");
    for instance in &instances {
        let key = CacheKey::Slug(tenant.slug.clone());
        assert_eq!(
            instance.get(&key).await.expect("get").as_ref(),
            Some(&tenant)
        );
    }
    // The registry suspends the tenant, then the cache is told.
    instances[2]
        .invalidate(tenant.id)
        .await
        .expect("invalidate");
    let mut suspended = tenant.clone();
    suspended.status = TenantStatus::Suspended;
    for instance in &instances {
        support::eventually(Duration::from_secs(1), "old record dropped", || async {
            let seen = instance
                .get(&CacheKey::Slug(tenant.slug.clone()))
                .await
                .expect("get");
            seen.is_none_or(|t| t.status == TenantStatus::Suspended)
        })
        .await;
    }
    instances[1].put(&suspended).await.expect("put");
    for instance in &instances {
        let seen = instance.get(&CacheKey::Id(tenant.id)).await.expect("get");
        assert!(seen.is_none_or(|t| t.status == TenantStatus::Suspended));
    }
}

#[tokio::test]
async fn invalidating_everything_reaches_other_instances() {
    let redis = TestRedis::create().await;
    let a = cache(&support::pool(&redis).await).await;
    let b = cache(&support::pool(&redis).await).await;
    let t = sample_tenant();
    b.put(&t).await.expect("put");
    let key = CacheKey::Id(t.id);
    b.get(&key).await.expect("get");
    assert_eq!(b.detailed_stats().local_hits, 1);
    a.invalidate_all_local().await.expect("invalidate all");
    support::eventually(Duration::from_secs(1), "local copy dropped", || async {
        let before = b.detailed_stats().redis_hits;
        let seen = b.get(&key).await.expect("get");
        assert_eq!(seen.as_ref(), Some(&t), "Redis still holds the record");
        b.detailed_stats().redis_hits > before
    })
    .await;
}

#[tokio::test]
async fn bad_settings_are_refused() {
    let redis = TestRedis::create().await;
    let pool = support::pool(&redis).await;
    let bad = TenantCacheConfig::default().with_local_ttl(Duration::from_secs(600));
    let err = RedisTenantCache::new(&pool, bad)
        .await
        .expect_err("local ttl > ttl");
    assert_eq!(err.field(), Some("cache.local_ttl"));
    let unknown = CacheKey::Domain("x".repeat(300));
    let cache = cache(&pool).await;
    assert_eq!(cache.get(&unknown).await.expect("get"), None);
}
