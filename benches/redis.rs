//! Redis adapter benchmarks: GCRA quota checks (Lua, one round trip) against a naive
//! fixed-window limiter (`INCR` + `PEXPIRE`, also one round trip) on the same pool; GCRA
//! checks from leased budgets against one script per check, on one key and on 1,000 keys, with
//! the Redis CPU each check costs (`INFO cpu` deltas over a counted number of checks); and
//! tenant cache hits served locally against hits served by Redis; and the pool itself:
//! [`RedisPool`] against a `bb8_redis::RedisConnectionManager` pool of the same size (with
//! bb8's default `PING` on every checkout, and without), checkout + `PING` and a pipelined
//! `SET` + `GET`, from one task and from 32 tasks at once.
//!
//! Needs the test Redis (`TEST_REDIS_URL`, default `redis://127.0.0.1:6379`); keys live under
//! a unique prefix and are deleted at the end. Point it at a private, otherwise idle
//! `redis-server` for the CPU figures: they count everything the server does meanwhile.
//!
//! ```text
//! cargo bench --bench redis --features redis
//! # leased vs per-request only; TM_BENCH_REDIS_CPU_CHECKS (default 20000, 0 skips) sets how
//! # many checks the CPU figures of the per-request script count (ten times as many leased)
//! cargo bench --bench redis --features redis -- --warm-up-time 1 --measurement-time 3 quota_lease
//! # the pools only
//! cargo bench --bench redis --features redis -- --warm-up-time 1 --measurement-time 3 redis_pool
//! ```
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bb8_redis::RedisConnectionManager;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::future::join_all;
use tenant_manager::core::testing::cache::sample_tenant;
use tenant_manager::redis::{
    RateLeaseConfig, RedisConfig, RedisPool, RedisQuotaEnforcer, RedisTenantCache,
    TenantCacheConfig,
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

/// `used_cpu_user + used_cpu_sys` of the server, in microseconds.
async fn redis_cpu_us(pool: &RedisPool) -> f64 {
    let info: String = pool
        .query(tenant_manager::redis::redis::cmd("INFO").arg("cpu"))
        .await
        .expect("info cpu");
    let field = |name: &str| -> f64 {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse().ok())
            .expect("cpu field")
    };
    (field("used_cpu_user") + field("used_cpu_sys")) * 1e6
}

/// Script calls (`EVALSHA`) the server has run so far.
async fn script_calls(pool: &RedisPool) -> u64 {
    let info: String = pool
        .query(tenant_manager::redis::redis::cmd("INFO").arg("commandstats"))
        .await
        .expect("info commandstats");
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

/// Checks 64 at a time, each batch on the next 64 of `keys` (cycling).
async fn checks(q: &RedisQuotaEnforcer, keys: &[RateKey], limit: &RateLimit, cursor: &AtomicUsize) {
    let start = cursor.fetch_add(CONCURRENT, Ordering::Relaxed);
    let batch = (start..start + CONCURRENT).map(|i| q.check_rate(&keys[i % keys.len()], limit, 1));
    for d in join_all(batch).await {
        assert!(d.expect("check").allowed);
    }
}

/// Redis CPU per check of `q` over `n` checks spread over `key_count` fresh keys (after
/// `n / 10` to warm up), printed with the script calls per 1,000 checks.
fn cpu_per_check(
    s: &Setup,
    name: &str,
    q: &RedisQuotaEnforcer,
    key_count: usize,
    limit: &RateLimit,
    n: usize,
) {
    let keys: Vec<RateKey> = (0..key_count)
        .map(|_| RateKey::tenant(TenantId::new()))
        .collect();
    let keys = &keys[..];
    let cursor = AtomicUsize::new(0);
    s.runtime.block_on(async {
        for _ in 0..(n / 10).div_ceil(CONCURRENT) {
            checks(q, keys, limit, &cursor).await;
        }
        let (cpu, calls, started) = (
            redis_cpu_us(&s.pool).await,
            script_calls(&s.pool).await,
            Instant::now(),
        );
        let batches = n.div_ceil(CONCURRENT);
        for _ in 0..batches {
            checks(q, keys, limit, &cursor).await;
        }
        let elapsed = started.elapsed();
        let calls = script_calls(&s.pool).await - calls;
        let cpu = redis_cpu_us(&s.pool).await - cpu;
        let done = (batches * CONCURRENT) as f64;
        println!(
            "redis_cpu_per_check {name}: {:.3} µs, {:.1} script calls per 1000 checks \
             ({done} checks in {:.2} s, {:.0} checks/s, redis cpu {:.1} ms)",
            cpu / done,
            calls as f64 * 1000.0 / done,
            elapsed.as_secs_f64(),
            done / elapsed.as_secs_f64(),
            cpu / 1000.0,
        );
    });
}

/// Leased budgets against one script per check, 64 checks in flight, on one key and spread
/// over 1,000 keys, then the Redis CPU per check of each.
fn quota_lease(c: &mut Criterion) {
    let s = setup();
    let per_request = RedisQuotaEnforcer::new(&s.pool);
    let leased = RedisQuotaEnforcer::new(&s.pool)
        .with_rate_leases(RateLeaseConfig::default())
        .expect("leases");
    // Never reached: every check is admitted; a lease is 64 cells (the default cap).
    let limit = RateLimit::new(1_000_000_000, Duration::from_secs(60)).expect("rate");
    let one_key = vec![RateKey::tenant(TenantId::new())];
    let thousand: Vec<RateKey> = (0..1_000)
        .map(|_| RateKey::tenant(TenantId::new()))
        .collect();

    for (group, keys) in [("single_key", &one_key), ("1000_keys", &thousand)] {
        let mut g = c.benchmark_group(format!("quota_lease/{group}"));
        g.throughput(Throughput::Elements(CONCURRENT as u64));
        for (name, q) in [("per_request_script", &per_request), ("leased", &leased)] {
            let cursor = AtomicUsize::new(0);
            g.bench_function(name, |b| {
                b.to_async(&s.runtime)
                    .iter(|| checks(q, keys, &limit, &cursor));
            });
        }
        g.finish();
    }

    let n: usize = std::env::var("TM_BENCH_REDIS_CPU_CHECKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    if n == 0 {
        return;
    }
    let idle = s.runtime.block_on(async {
        let before = redis_cpu_us(&s.pool).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        redis_cpu_us(&s.pool).await - before
    });
    println!("redis_cpu idle: {:.0} µs per second", idle);
    for (group, key_count) in [("single_key", 1), ("1000_keys", 1_000)] {
        for (name, q) in [("per_request_script", &per_request), ("leased", &leased)] {
            let count = if name == "leased" { n * 10 } else { n };
            cpu_per_check(&s, &format!("{group}/{name}"), q, key_count, &limit, count);
        }
    }
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

/// Tasks running at once in the concurrent pool benches.
const POOL_TASKS: usize = 32;
/// Connections of every pool compared (the `RedisPool` of [`setup`] has 16 too).
const POOL_SIZE: u32 = 16;

/// One pool under test: checkout + `PING`, and a pipelined `SET` + `GET` of `key`.
#[derive(Clone)]
enum PoolUnderTest {
    /// Today's pool: bb8 over the adapter's own manager, no round trip at checkout.
    Adapter(RedisPool),
    /// bb8 over `bb8_redis::RedisConnectionManager`.
    Bb8Redis(bb8::Pool<RedisConnectionManager>),
}

impl PoolUnderTest {
    async fn ping(&self) {
        match self {
            Self::Adapter(pool) => pool.ping().await.expect("ping"),
            Self::Bb8Redis(pool) => {
                let mut conn = pool.get().await.expect("checkout");
                let pong: String = redis::cmd("PING")
                    .query_async(&mut *conn)
                    .await
                    .expect("ping");
                assert_eq!(pong, "PONG");
            }
        }
    }

    async fn set_get(&self, key: &str) {
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(key)
            .arg("value")
            .ignore()
            .cmd("GET")
            .arg(key);
        let (value,): (String,) = match self {
            Self::Adapter(pool) => pool.query_pipeline(&pipe).await.expect("pipeline"),
            Self::Bb8Redis(pool) => {
                let mut conn = pool.get().await.expect("checkout");
                pipe.query_async(&mut *conn).await.expect("pipeline")
            }
        };
        assert_eq!(value, "value");
    }
}

/// `POOL_TASKS` spawned tasks, each running `op` once on its own key.
async fn in_tasks(pool: &PoolUnderTest, keys: &[String], set_get: bool) {
    let tasks: Vec<_> = keys
        .iter()
        .map(|key| {
            let (pool, key) = (pool.clone(), key.clone());
            tokio::spawn(async move {
                if set_get {
                    pool.set_get(&key).await;
                } else {
                    pool.ping().await;
                }
            })
        })
        .collect();
    for task in join_all(tasks).await {
        task.expect("task");
    }
}

/// Today's `RedisPool` against `bb8_redis` pools of the same size in the same run.
fn redis_pool(c: &mut Criterion) {
    let s = setup();
    // bb8 starts its reaper on the current runtime.
    let _runtime = s.runtime.enter();
    let bb8_redis = |test_on_check_out: bool| {
        let manager = RedisConnectionManager::new(s.redis.url()).expect("manager");
        let pool = bb8::Pool::builder()
            .max_size(POOL_SIZE)
            .test_on_check_out(test_on_check_out)
            .connection_timeout(Duration::from_secs(5))
            .build_unchecked(manager);
        PoolUnderTest::Bb8Redis(pool)
    };
    let pools = [
        ("redis_pool", PoolUnderTest::Adapter(s.pool.clone())),
        ("bb8_redis_default", bb8_redis(true)),
        ("bb8_redis_no_checkout_ping", bb8_redis(false)),
    ];
    let keys: Vec<String> = (0..POOL_TASKS)
        .map(|i| format!("{}pool_bench:{i}", s.redis.prefix()))
        .collect();
    // Every pool opens all its connections before anything is timed.
    s.runtime.block_on(async {
        for (_, pool) in &pools {
            for _ in 0..4 {
                in_tasks(pool, &keys, true).await;
            }
        }
    });

    for (op, set_get) in [("ping", false), ("pipelined_set_get", true)] {
        let mut group = c.benchmark_group(format!("redis_pool/{op}/single"));
        group.throughput(Throughput::Elements(1));
        for (name, pool) in &pools {
            group.bench_function(*name, |b| {
                b.to_async(&s.runtime).iter(|| async {
                    if set_get {
                        pool.set_get(&keys[0]).await;
                    } else {
                        pool.ping().await;
                    }
                });
            });
        }
        group.finish();

        let mut group = c.benchmark_group(format!("redis_pool/{op}/tasks_{POOL_TASKS}"));
        group.throughput(Throughput::Elements(POOL_TASKS as u64));
        for (name, pool) in &pools {
            group.bench_function(*name, |b| {
                b.to_async(&s.runtime)
                    .iter(|| in_tasks(pool, &keys, set_get));
            });
        }
        group.finish();
    }
}

criterion_group!(benches, quota, quota_lease, cache, redis_pool);
criterion_main!(benches);
