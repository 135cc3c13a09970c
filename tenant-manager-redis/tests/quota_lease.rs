//! Leased rate limits of `RedisQuotaEnforcer` against the real Redis: the quota conformance
//! suite, the bound of `RateLeaseConfig` with several instances (separate pools) hammering one
//! key, expiry and give-back of leases, instances of both modes sharing a limit, and Redis
//! outages.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tenant_manager_core::testing::Fixture;
use tenant_manager_core::{Error, QuotaEnforcer, RateKey, RateLimit, TenantId};
use tenant_manager_redis::{RateLeaseConfig, RedisPool, RedisQuotaEnforcer, UnavailablePolicy};
use tenant_manager_test_support::{PrivateRedis, TestRedis};

/// Leases of up to half the limit: the conformance limits (2 to 50) lease several cells.
mod half_limit_leases {
    use super::*;

    async fn fixture() -> Fixture<dyn QuotaEnforcer, TestRedis> {
        let redis = TestRedis::create().await;
        let config = RateLeaseConfig::default().with_limit_divisor(2);
        let q = leased(&support::pool(&redis).await, config);
        Fixture::with_guard(Arc::new(q), redis)
    }

    tenant_manager_core::quota_conformance!(fixture);
}

/// The default settings (the conformance limits lease one cell at a time).
mod default_leases {
    use super::*;

    async fn fixture() -> Fixture<dyn QuotaEnforcer, TestRedis> {
        let redis = TestRedis::create().await;
        let q = leased(&support::pool(&redis).await, RateLeaseConfig::default());
        Fixture::with_guard(Arc::new(q), redis)
    }

    tenant_manager_core::quota_conformance!(fixture);
}

fn leased(pool: &RedisPool, config: RateLeaseConfig) -> RedisQuotaEnforcer {
    RedisQuotaEnforcer::new(pool)
        .with_rate_leases(config)
        .expect("lease config")
}

/// `instances` enforcers, each on its own pool (as separate processes would be).
async fn instances(
    redis: &TestRedis,
    n: usize,
    config: RateLeaseConfig,
) -> Vec<RedisQuotaEnforcer> {
    let mut all = Vec::with_capacity(n);
    for _ in 0..n {
        all.push(leased(&support::pool(redis).await, config));
    }
    all
}

/// The emission interval of `limit` in microseconds, as the scripts compute it.
fn interval_us(limit: &RateLimit) -> u64 {
    (limit.window_ms * 1000).div_ceil(limit.limit)
}

/// One admission, timed by instants taken before the call and after its answer (the decision
/// lies between them).
#[derive(Debug, Clone, Copy)]
struct Admission {
    asked: Instant,
    answered: Instant,
}

/// Runs `workers` concurrent loops on each instance, each calling `check_rate(key, limit, 1)`
/// until `stop(calls)` says so; returns the admissions. A refusal is followed by a 1 ms pause
/// (the demand stays far above the limits used here).
async fn hammer(
    instances: &[RedisQuotaEnforcer],
    workers: usize,
    key: &RateKey,
    limit: RateLimit,
    stop: impl Fn(usize, Instant) -> bool + Copy + Send + Sync + 'static,
) -> Vec<Admission> {
    let mut tasks = Vec::new();
    for q in instances {
        for _ in 0..workers {
            let (q, key) = (q.clone(), key.clone());
            tasks.push(tokio::spawn(async move {
                let mut admitted = Vec::new();
                let mut calls = 0;
                while !stop(calls, Instant::now()) {
                    calls += 1;
                    let asked = Instant::now();
                    let decision = q.check_rate(&key, &limit, 1).await.expect("check");
                    if decision.allowed {
                        admitted.push(Admission {
                            asked,
                            answered: Instant::now(),
                        });
                    } else {
                        assert!(decision.retry_after.is_some(), "{decision:?}");
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                admitted
            }));
        }
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("worker"));
    }
    all
}

/// Four instances, eight workers each, 8,000 checks against 1,000 per hour on one fresh key:
/// at most the limit is admitted (plus what replenished while the test ran, one per 3.6 s),
/// and at least the limit minus the cells the instances may still hold (`I × N`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_admit_the_limit_of_a_fresh_window_within_the_bound() {
    let redis = TestRedis::create().await;
    // N = min(64, 1000 / 10) = 64; leases last the whole test.
    let config = RateLeaseConfig::default()
        .with_limit_divisor(10)
        .with_ttl(Duration::from_secs(60));
    let fleet = instances(&redis, 4, config).await;
    let limit = RateLimit::new(1_000, Duration::from_secs(3600)).expect("rate");
    let key = RateKey::tenant(TenantId::new());
    let started = Instant::now();
    let admitted = hammer(&fleet, 8, &key, limit, |calls, _| calls >= 250)
        .await
        .len() as u64;
    let elapsed = started.elapsed();

    let cap = config.cap(limit.limit);
    assert_eq!(cap, 64);
    let replenished = (elapsed.as_micros() as u64).div_ceil(interval_us(&limit));
    let held: u64 = fleet.iter().map(|q| q.leased_cells(&key)).sum();
    println!("admitted {admitted} of 8000 in {elapsed:?}; {held} cells still held");
    assert!(
        admitted <= limit.limit + replenished,
        "{admitted} admitted: above the limit of a fresh window ({} + {replenished} replenished)",
        limit.limit
    );
    let floor = limit.limit - fleet.len() as u64 * cap;
    assert!(
        admitted >= floor,
        "{admitted} admitted: below limit - I x N = {floor}"
    );
    assert!(
        admitted + held >= limit.limit,
        "cells went missing: {admitted} + {held} held"
    );
}

/// Three instances hammer 100 per second for 2.5 s with leases of up to 25 cells that expire
/// after 200 ms. Over any span of one window at most `L + W/T + E` are admitted, with
/// `E = min(I × N, ⌈D/T⌉) = min(75, 20)`; over the whole run (a fresh key) at most
/// `L + τ/T`. The per-request script's bound would be `L + W/T` = 200 per window.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn over_any_window_admissions_stay_within_the_bound() {
    let redis = TestRedis::create().await;
    let ttl = Duration::from_millis(200);
    let config = RateLeaseConfig::default()
        .with_limit_divisor(4)
        .with_ttl(ttl);
    let fleet = instances(&redis, 3, config).await;
    let limit = RateLimit::new(100, Duration::from_secs(1)).expect("rate");
    let key = RateKey::tenant(TenantId::new());
    let t = interval_us(&limit);
    let cap = config.cap(limit.limit);
    assert_eq!(cap, 25);
    let extra = (fleet.len() as u64 * cap).min((ttl.as_micros() as u64).div_ceil(t));

    let started = Instant::now();
    let until = started + Duration::from_millis(2_500);
    let mut admitted = hammer(&fleet, 4, &key, limit, move |_, now| now >= until).await;
    let elapsed = started.elapsed();
    admitted.sort_by_key(|a| a.asked);

    // Whole run, from a fresh key: the per-request bound, nothing held at the start.
    let total = admitted.len() as u64;
    let run_bound = limit.limit + (elapsed.as_micros() as u64) / t + 1;
    println!("admitted {total} in {elapsed:?} (bound {run_bound})");
    assert!(
        total <= run_bound,
        "{total} admitted over the run, bound {run_bound}"
    );

    // Every window that starts at an admission: count the admissions decided within it for
    // sure (asked and answered inside), so scheduling delays can only lower the count.
    let window = limit.window();
    let window_bound = limit.limit + (window.as_micros() as u64) / t + extra + 1;
    let mut worst = 0;
    for (i, first) in admitted.iter().enumerate() {
        let end = first.asked + window;
        let inside = admitted[i..]
            .iter()
            .take_while(|a| a.asked <= end)
            .filter(|a| a.answered <= end)
            .count() as u64;
        worst = worst.max(inside);
    }
    println!("busiest window: {worst} admitted (bound {window_bound})");
    assert!(
        worst <= window_bound,
        "{worst} admitted within one window, bound L + W/T + E = {window_bound}"
    );
    assert!(
        total >= limit.limit,
        "the demand was far above the limit: {total}"
    );
}

/// A lease that expires stops admitting at once; its unused cells come back when the instance
/// next claims for the key and nobody claimed in between, and are lost (until they
/// replenish) when someone did.
#[tokio::test]
async fn an_expired_lease_stops_admitting_and_gives_back_what_it_can() {
    let redis = TestRedis::create().await;
    let ttl = Duration::from_millis(500);
    let config = RateLeaseConfig::default()
        .with_limit_divisor(2)
        .with_ttl(ttl);
    let fleet = instances(&redis, 2, config).await;
    let (a, b) = (&fleet[0], &fleet[1]);
    let limit = RateLimit::new(20, Duration::from_secs(3600)).expect("rate");
    let drain = |q: &RedisQuotaEnforcer, key: RateKey| {
        let q = q.clone();
        async move {
            let mut admitted = 0;
            while q.check_rate(&key, &limit, 1).await.expect("check").allowed {
                admitted += 1;
                assert!(admitted <= limit.limit, "never refused");
            }
            admitted
        }
    };
    let four = |key: RateKey| async move {
        for _ in 0..4 {
            assert!(a.check_rate(&key, &limit, 1).await.expect("check").allowed);
        }
        let held = a.leased_cells(&key);
        assert!(held >= 1, "leases of several cells were taken");
        held
    };

    // Given back: A's lease expires with cells left, A claims again, nobody came between.
    let key = RateKey::tenant(TenantId::new());
    let held = four(key.clone()).await;
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    assert_eq!(
        a.leased_cells(&key),
        0,
        "expired cells are not counted as held"
    );
    assert!(a.check_rate(&key, &limit, 1).await.expect("check").allowed);
    let still = a.leased_cells(&key);
    let by_b = drain(b, key.clone()).await;
    assert_eq!(
        by_b,
        limit.limit - 5 - still,
        "the {held} unused cells of the expired lease came back"
    );

    // Not given back: B claimed after A's lease, so A's expired cells stay spent; and A no
    // longer admits from them.
    let key = RateKey::tenant(TenantId::new());
    let held = four(key.clone()).await;
    let by_b = drain(b, key.clone()).await;
    assert_eq!(by_b, limit.limit - 4 - held, "A's lease is spoken for");
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    let d = a.check_rate(&key, &limit, 1).await.expect("check");
    assert!(!d.allowed, "the expired lease admitted: {d:?}");
    assert_eq!(d.remaining, 0);
    assert!(d.retry_after.is_some_and(|r| r > Duration::ZERO));
    assert_eq!(a.leased_cells(&key), 0);
}

/// A per-request instance and a leased one share a key's limit exactly.
#[tokio::test]
async fn per_request_and_leased_instances_share_one_limit() {
    let redis = TestRedis::create().await;
    let per_request = RedisQuotaEnforcer::new(&support::pool(&redis).await);
    let leased = leased(
        &support::pool(&redis).await,
        RateLeaseConfig::default().with_limit_divisor(2),
    );
    let limit = RateLimit::new(30, Duration::from_secs(3600)).expect("rate");
    let key = RateKey::tenant(TenantId::new());
    let (mut admitted, mut rounds) = (0, 0);
    loop {
        let one = per_request
            .check_rate(&key, &limit, 1)
            .await
            .expect("check");
        let two = leased.check_rate(&key, &limit, 1).await.expect("check");
        admitted += u64::from(one.allowed) + u64::from(two.allowed);
        rounds += 1;
        if !one.allowed && !two.allowed {
            break;
        }
        assert!(rounds <= 30, "never refused");
    }
    assert_eq!(admitted, limit.limit);
    assert_eq!(leased.leased_cells(&key), 0);
}

/// Cells in hand keep admitting while Redis is down; then the unavailability policy answers.
#[tokio::test]
async fn held_cells_outlast_an_outage_then_the_policy_applies() {
    let mut server = PrivateRedis::start();
    let pool = RedisPool::connect(support::fast_failing(&server.url()))
        .await
        .expect("pool");
    let retry_after = Duration::from_secs(7);
    let q = leased(
        &pool,
        RateLeaseConfig::default()
            .with_limit_divisor(2)
            .with_ttl(Duration::from_secs(60)),
    )
    .with_unavailable_policy(UnavailablePolicy::FailClosed { retry_after });
    let limit = RateLimit::new(100, Duration::from_secs(3600)).expect("rate");
    let key = RateKey::tenant(TenantId::new());
    // Leases of 1, 2 and 4 cells: after 4 checks, 3 are in hand.
    for _ in 0..4 {
        assert!(q.check_rate(&key, &limit, 1).await.expect("check").allowed);
    }
    let held = q.leased_cells(&key);
    assert!(held >= 1);
    server.kill();
    for _ in 0..held {
        let d = support::within(Duration::from_secs(5), q.check_rate(&key, &limit, 1))
            .await
            .expect("check");
        assert!(d.allowed, "from the lease in hand: {d:?}");
    }
    let d = support::within(Duration::from_secs(5), q.check_rate(&key, &limit, 1))
        .await
        .expect("fail closed");
    assert!(!d.allowed);
    assert_eq!(d.retry_after, Some(retry_after));
    let err = support::within(Duration::from_secs(5), q.try_check_rate(&key, &limit, 1))
        .await
        .expect_err("reported");
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    let open = q
        .clone()
        .with_unavailable_policy(UnavailablePolicy::FailOpen)
        .check_rate(&key, &limit, 1)
        .await
        .expect("fail open");
    assert!(open.allowed);
}

#[tokio::test]
async fn bad_lease_settings_are_refused() {
    let redis = TestRedis::create().await;
    let pool = support::pool(&redis).await;
    let err = RedisQuotaEnforcer::new(&pool)
        .with_rate_leases(RateLeaseConfig::default().with_limit_divisor(1))
        .expect_err("a lease of the whole limit");
    assert_eq!(err.field(), Some("rate_lease.limit_divisor"));
    assert!(RedisQuotaEnforcer::new(&pool).rate_leases().is_none());
}
