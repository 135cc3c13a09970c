//! Redis adapter benchmarks: GCRA quota checks (Lua, one round trip) against a naive
//! fixed-window limiter (`INCR` + `PEXPIRE`, also one round trip) on the same pool, and tenant
//! cache hits served locally against hits served by Redis.
//!
//! Needs the test Redis (`TEST_REDIS_URL`, default `redis://127.0.0.1:6379`); keys live under
//! a unique prefix and are deleted at the end.
//!
//! ```text
//! cargo bench --bench redis --features redis
//! ```
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::future::join_all;
use tenant_manager::core::testing::cache::sample_tenant;
use tenant_manager::redis::{
    RedisConfig, RedisPool, RedisQuotaEnforcer, RedisTenantCache, TenantCacheConfig,
};
use tenant_manager::{CacheKey, QuotaEnforcer, RateKey, RateLimit, TenantCache, TenantId};
use tenant_manager_test_support::TestRedis;
use tokio::runtime::Runtime;

/// Checks in flight at once in the throughput benches.
const CONCURRENT: usize = 64;

/// The limiter every tutorial starts with: count requests in a fixed window.
struct NaiveLimiter {
    pool: RedisPool,
    prefix: String,
}

impl NaiveLimiter {
    async fn check(&self, key: &RateKey, limit: &RateLimit) -> bool {
        let key = format!("{}naive:{}", self.prefix, key.as_str());
        let mut pipe = tenant_manager::redis::redis::pipe();
        pipe.atomic()
            .cmd("INCR")
            .arg(&key)
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(limit.window_ms)
            .arg("NX")
            .ignore();
        let (count,): (u64,) = self.pool.query_pipeline(&pipe).await.expect("naive check");
        count <= limit.limit
    }
}

struct Setup {
    runtime: Runtime,
    pool: RedisPool,
    redis: TestRedis,
}

fn setup() -> Setup {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let redis = runtime.block_on(TestRedis::create());
    let pool = runtime
        .block_on(RedisPool::connect(
            RedisConfig::new(redis.url())
                .with_key_prefix(redis.prefix())
                .with_pool_size(16),
        ))
        .expect("pool");
    runtime.block_on(pool.ping()).expect("redis");
    Setup {
        runtime,
        pool,
        redis,
    }
}

fn quota(c: &mut Criterion) {
    let s = setup();
    let gcra = RedisQuotaEnforcer::new(&s.pool);
    let naive = NaiveLimiter {
        pool: s.pool.clone(),
        prefix: s.redis.prefix().to_owned(),
    };
    // A limit no run reaches: every check is admitted and writes, as most real checks do.
    let limit = RateLimit::new(1_000_000_000, Duration::from_secs(60)).expect("rate");
    let keys: Vec<RateKey> = (0..CONCURRENT)
        .map(|_| RateKey::tenant(TenantId::new()))
        .collect();

    let mut group = c.benchmark_group("quota_check/sequential");
    group.throughput(Throughput::Elements(1));
    group.bench_function("gcra_lua", |b| {
        b.to_async(&s.runtime).iter(|| async {
            black_box(gcra.check_rate(&keys[0], &limit, 1).await.expect("check"))
        });
    });
    group.bench_function("naive_incr_expire", |b| {
        b.to_async(&s.runtime)
            .iter(|| async { black_box(naive.check(&keys[0], &limit).await) });
    });
    group.finish();

    let mut group = c.benchmark_group("quota_check/concurrent_64");
    group.throughput(Throughput::Elements(CONCURRENT as u64));
    group.bench_function("gcra_lua", |b| {
        b.to_async(&s.runtime)
            .iter(|| async { join_all(keys.iter().map(|k| gcra.check_rate(k, &limit, 1))).await });
    });
    group.bench_function("naive_incr_expire", |b| {
        b.to_async(&s.runtime)
            .iter(|| async { join_all(keys.iter().map(|k| naive.check(k, &limit))).await });
    });
    group.finish();
}

fn cache(c: &mut Criterion) {
    let s = setup();
    let config = TenantCacheConfig::default();
    let (local, remote) = s.runtime.block_on(async {
        let local = RedisTenantCache::new(&s.pool, config.clone())
            .await
            .expect("cache");
        let remote = RedisTenantCache::new(&s.pool, config.with_local_layer(false))
            .await
            .expect("cache");
        assert!(local.wait_subscribed(Duration::from_secs(5)).await);
        (local, remote)
    });
    let tenant = sample_tenant();
    s.runtime.block_on(local.put(&tenant)).expect("put");
    let by_id = CacheKey::Id(tenant.id);
    let by_slug = CacheKey::Slug(tenant.slug.clone());

    let mut group = c.benchmark_group("tenant_cache_hit");
    for (name, cache, key) in [
        ("local_by_id", &local, &by_id),
        ("local_by_slug", &local, &by_slug),
        ("redis_by_id", &remote, &by_id),
        ("redis_by_slug", &remote, &by_slug),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&s.runtime)
                .iter(|| async { black_box(cache.get(key).await.expect("get").expect("hit")) });
        });
    }
    group.finish();
    let stats = local.detailed_stats();
    assert!(
        stats.local_hits >= stats.redis_hits,
        "the local layer served: {stats:?}"
    );
    assert_eq!(remote.detailed_stats().local_hits, 0);
}

criterion_group!(benches, quota, cache);
criterion_main!(benches);
