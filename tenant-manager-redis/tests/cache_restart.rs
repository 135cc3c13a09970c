//! The tenant cache across a Redis restart: two instances on a private `redis-server` that the
//! test kills and starts again on the same port (never the shared one). After the restart an
//! invalidation from one instance reaches the other's lookups at once, and no fill read before
//! the restart can put back a record an invalidation after it dropped.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::time::Duration;

use tenant_manager_core::testing::cache::sample_tenant;
use tenant_manager_core::{CacheKey, CacheLookup, Tenant, TenantCache};
use tenant_manager_redis::{
    Invalidation, InvalidationReceiver, RedisPool, RedisTenantCache, TenantCacheConfig,
};
use tenant_manager_test_support::PrivateRedis;

/// Generous bound on reconnections: a hang detector, not a measurement.
const RECONNECT: Duration = Duration::from_secs(15);
/// How soon an invalidation must reach the other instance.
const PROPAGATION: Duration = Duration::from_secs(1);

/// One instance: its own pool (several connections, as a server under load has) and cache,
/// with the default cache settings (a 1 s subscriber ping).
async fn instance(url: &str) -> (RedisPool, RedisTenantCache) {
    let config = support::fast_failing(url)
        .with_key_prefix("restart:")
        .with_pool_size(4);
    let pool = RedisPool::connect(config).await.expect("pool");
    let cache = RedisTenantCache::new(&pool, TenantCacheConfig::default())
        .await
        .expect("cache");
    assert!(cache.wait_subscribed(RECONNECT).await, "subscribed");
    (pool, cache)
}

/// Opens connections of `pool` (bursts of concurrent commands), so idle ones wait in it.
async fn fill_pool(pool: &RedisPool) {
    // The pool opens connections in the background: a few bursts usually open several.
    for _ in 0..20 {
        let pings = (0..8).map(|_| pool.ping());
        for result in futures::future::join_all(pings).await {
            result.expect("ping");
        }
        if pool.connections().0 >= 2 {
            return;
        }
    }
    assert!(pool.connections().0 >= 1, "{:?}", pool.connections());
}

/// A lookup as `TenantLookup` makes it: on a miss, fill with `tenant` (what the registry
/// holds) at the epoch of the miss.
async fn resolve(cache: &RedisTenantCache, tenant: &Tenant) -> Tenant {
    match cache
        .lookup(&CacheKey::Id(tenant.id))
        .await
        .expect("lookup")
    {
        CacheLookup::Hit(found) => found,
        CacheLookup::Miss(epoch) => {
            cache.put_if_current(tenant, epoch).await.expect("fill");
            tenant.clone()
        }
    }
}

/// Kills the server, waits until both subscribers noticed, starts it again and waits until
/// both subscribed again.
async fn restart(server: &mut PrivateRedis, caches: [&RedisTenantCache; 2]) {
    server.kill();
    support::eventually(RECONNECT, "subscribers notice the outage", || async {
        caches.iter().all(|c| !c.detailed_stats().subscribed)
    })
    .await;
    server.restart();
    for cache in caches {
        assert!(cache.wait_subscribed(RECONNECT).await, "resubscribed");
    }
}

/// Waits for the `All` a resubscription sends, skipping earlier messages.
async fn expect_all(receiver: &mut InvalidationReceiver) {
    let wait = async {
        loop {
            if receiver.recv().await == Some(Invalidation::All) {
                return;
            }
        }
    };
    tokio::time::timeout(RECONNECT, wait)
        .await
        .expect("Invalidation::All after the reconnection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_an_invalidation_from_one_instance_reaches_the_others_lookups() {
    let mut server = PrivateRedis::start();
    let (pool_a, a) = instance(&server.url()).await;
    let (_pool_b, b) = instance(&server.url()).await;
    let mut b_feed = b.subscribe_invalidations();
    fill_pool(&pool_a).await;
    let tenant = sample_tenant();
    resolve(&b, &tenant).await;

    restart(&mut server, [&a, &b]).await;
    expect_all(&mut b_feed).await;

    // Instance B serves the tenant from its local layer again.
    resolve(&b, &tenant).await;
    let before = b.detailed_stats().local_hits;
    assert_eq!(resolve(&b, &tenant).await.status, tenant.status);
    assert_eq!(b.detailed_stats().local_hits, before + 1, "a local hit");

    // A, which sent nothing to Redis since the restart, suspends the tenant.
    a.invalidate(tenant.id)
        .await
        .expect("the invalidation reaches Redis after the restart");
    let deadline = tokio::time::Instant::now() + PROPAGATION;
    loop {
        let seen = b.lookup(&CacheKey::Id(tenant.id)).await.expect("lookup");
        if matches!(seen, CacheLookup::Miss(_)) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "instance B still answers the invalidated tenant from its cache"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let feed = tokio::time::timeout(PROPAGATION, async {
        loop {
            if b_feed.recv().await == Some(Invalidation::Tenant(tenant.id)) {
                return;
            }
        }
    })
    .await;
    assert!(feed.is_ok(), "B's receivers heard of the invalidation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_read_before_a_restart_cannot_undo_an_invalidation_after_it() {
    let mut server = PrivateRedis::start();
    let (_pool_a, a) = instance(&server.url()).await;
    let (_pool_b, b) = instance(&server.url()).await;
    let tenant = sample_tenant();
    // One invalidation before the restart, so the epoch counter has a small value.
    a.invalidate(tenant.id).await.expect("invalidate");

    // B misses and starts reading the registry: the old (active) record.
    let CacheLookup::Miss(epoch) = b.lookup(&CacheKey::Id(tenant.id)).await.expect("lookup") else {
        panic!("nothing is cached yet");
    };

    // Redis restarts (its keys are gone), then A suspends the tenant once.
    restart(&mut server, [&a, &b]).await;
    support::eventually(RECONNECT, "A's invalidation goes through", || async {
        a.invalidate(tenant.id).await.is_ok()
    })
    .await;

    // B's fill with what it read before the suspension must be refused.
    let filled = b.put_if_current(&tenant, epoch).await.expect("fill");
    assert!(
        !filled,
        "a record read before the restart was cached after a later invalidation (epoch {epoch:?})"
    );
    for cache in [&a, &b] {
        assert!(
            cache
                .get(&CacheKey::Id(tenant.id))
                .await
                .expect("get")
                .is_none(),
            "the old record is cached"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_no_command_fails_on_a_dead_idle_connection() {
    let mut server = PrivateRedis::start();
    let (pool_a, a) = instance(&server.url()).await;
    let (pool_b, b) = instance(&server.url()).await;
    fill_pool(&pool_a).await;
    fill_pool(&pool_b).await;

    restart(&mut server, [&a, &b]).await;

    // Every idle connection was opened to the killed server. The subscriber's disconnection
    // made them stale, so each command of a burst (one per pooled connection and more) runs
    // on a fresh connection: not one fails, although a plain command is never retried.
    for pool in [&pool_a, &pool_b] {
        let pings = (0..8).map(|_| pool.ping());
        for result in futures::future::join_all(pings).await {
            result.expect("a command after the restart");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_invalidation_after_a_restart_goes_through_although_calls_failed_meanwhile() {
    let mut server = PrivateRedis::start();
    let (pool_a, a) = instance(&server.url()).await;
    let tenant = sample_tenant();
    server.kill();
    // Traffic during the outage: the pool learns that Redis is down and refuses calls at
    // once from then on, while its subscriber retries with a growing backoff.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while tokio::time::Instant::now() < deadline {
        let _ = a.lookup(&CacheKey::Id(tenant.id)).await;
        let _ = pool_a.ping().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(pool_a.ping().await.is_err(), "Redis is down");

    // Redis is back; the very first invalidation must not be refused by the fail-fast state.
    server.restart();
    a.invalidate(tenant.id)
        .await
        .expect("the first invalidation after the restart");
}
