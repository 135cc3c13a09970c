//! With Redis unreachable every component answers `Unavailable` within bounded time instead of
//! hanging, and recovers by itself when Redis is back. Uses an address where nothing listens,
//! and a private `redis-server` that the test kills and restarts (never the shared one).
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::error::Error as _;
use std::time::Duration;

use tenant_manager_core::testing::cache::sample_tenant;
use tenant_manager_core::{
    CacheKey, Error, JobQueue, NewJob, QuotaEnforcer, RateKey, RateLimit, Result, TenantCache,
    TenantId,
};
use tenant_manager_redis::{
    JobQueueConfig, RedisJobQueue, RedisLock, RedisPool, RedisQuotaEnforcer, RedisTenantCache,
    TenantCacheConfig,
};
use tenant_manager_test_support::PrivateRedis;

/// Generous bound: a hang detector, not a measurement.
const BOUND: Duration = Duration::from_secs(5);

fn assert_unavailable<T: std::fmt::Debug>(what: &str, result: Result<T>) -> Error {
    match result {
        Err(err @ Error::Unavailable { .. }) => err,
        other => panic!("{what}: expected Unavailable, got {other:?}"),
    }
}

struct Components {
    pool: RedisPool,
    quota: RedisQuotaEnforcer,
    cache: RedisTenantCache,
    jobs: RedisJobQueue,
    lock: RedisLock,
}

/// The components of one instance; instances with the same `prefix` are one deployment.
async fn components(url: &str, prefix: &str) -> Components {
    let config = support::fast_failing(url).with_key_prefix(prefix);
    let pool = RedisPool::connect(config).await.expect("pool");
    let cache_config = TenantCacheConfig::default().with_ping_interval(Duration::from_millis(100));
    Components {
        quota: RedisQuotaEnforcer::new(&pool),
        cache: RedisTenantCache::new(&pool, cache_config)
            .await
            .expect("cache"),
        jobs: RedisJobQueue::new(
            &pool,
            JobQueueConfig::default().with_poll_interval(Duration::from_millis(100)),
        )
        .expect("queue"),
        lock: RedisLock::new(&pool),
        pool,
    }
}

/// Every component's calls, each bounded; returns the first error of each.
async fn exercise(c: &Components) -> Vec<(&'static str, Result<()>)> {
    let limit = RateLimit::new(10, Duration::from_secs(60)).expect("rate");
    let tenant = sample_tenant();
    let job = NewJob::new("test.job", None, serde_json::json!({})).expect("job");
    vec![
        ("ping", support::within(BOUND, c.pool.ping()).await),
        (
            "check_rate",
            support::within(
                BOUND,
                c.quota.check_rate(&RateKey::tenant(tenant.id), &limit, 1),
            )
            .await
            .map(drop),
        ),
        (
            "cache put",
            support::within(BOUND, c.cache.put(&tenant)).await,
        ),
        (
            "cache get",
            support::within(BOUND, c.cache.get(&CacheKey::Slug(tenant.slug.clone())))
                .await
                .map(drop),
        ),
        (
            "cache invalidate",
            support::within(BOUND, c.cache.invalidate(tenant.id)).await,
        ),
        (
            "enqueue",
            support::within(BOUND, c.jobs.enqueue(job)).await.map(drop),
        ),
        (
            "dequeue",
            support::within(BOUND, c.jobs.dequeue("c", Duration::from_millis(200)))
                .await
                .map(drop),
        ),
        (
            "queue stats",
            support::within(BOUND, c.jobs.stats()).await.map(drop),
        ),
        (
            "lock",
            support::within(BOUND, c.lock.try_acquire("r", Duration::from_secs(1)))
                .await
                .map(drop),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_means_unavailable_at_once_not_a_hang() {
    let url = format!("redis://127.0.0.1:{}", support::dead_port());
    let c = components(&url, "dead:").await;
    for (what, result) in exercise(&c).await {
        assert_unavailable(what, result);
    }
    // Once a connect has failed, calls are refused without waiting for another one.
    let err = assert_unavailable("again", c.pool.ping().await);
    let source = err.source().map(ToString::to_string).unwrap_or_default();
    assert!(source.contains("unreachable"), "{source}");
    assert!(!c.cache.detailed_stats().subscribed);
    assert_eq!(
        c.quota
            .usage(TenantId::new(), tenant_manager_core::UsageKind::Users)
            .await
            .map_err(|e| e.code()),
        Err("backend_unavailable")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_recover_when_a_killed_redis_comes_back() {
    let mut server = PrivateRedis::start();
    let c = components(&server.url(), "app:").await;
    let other_instance = components(&server.url(), "app:").await;
    for (what, result) in exercise(&c).await {
        result.unwrap_or_else(|e| panic!("{what} before the outage: {e}"));
    }
    assert!(c.cache.wait_subscribed(BOUND).await);

    // A consumer is blocked waiting for jobs when Redis dies.
    let waiting = tokio::spawn({
        let jobs = c.jobs.clone();
        async move { jobs.dequeue("waiting", Duration::from_secs(30)).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.kill();

    let blocked = support::within(BOUND, waiting).await.expect("task");
    assert_unavailable("blocked dequeue", blocked);
    for (what, result) in exercise(&c).await {
        assert_unavailable(what, result);
    }
    support::eventually(BOUND, "subscriber notices the outage", || async {
        !c.cache.detailed_stats().subscribed
    })
    .await;

    server.restart();
    support::eventually(Duration::from_secs(10), "calls succeed again", || async {
        exercise(&c).await.iter().all(|(_, result)| result.is_ok())
    })
    .await;
    assert!(c.cache.wait_subscribed(BOUND).await, "resubscribed");
    assert!(
        other_instance.cache.wait_subscribed(BOUND).await,
        "resubscribed"
    );

    // Invalidation crosses instances again after the reconnection.
    let t = sample_tenant();
    c.cache.put(&t).await.expect("put");
    let key = CacheKey::Id(t.id);
    assert!(other_instance.cache.get(&key).await.expect("get").is_some());
    c.cache.invalidate(t.id).await.expect("invalidate");
    support::eventually(Duration::from_secs(1), "invalidation reached", || async {
        other_instance.cache.get(&key).await.expect("get").is_none()
    })
    .await;
}
