//! `RedisQuotaEnforcer` against the real Redis: the quota conformance suite, key prefixes,
//! server-side time, and the unavailability policies.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use tenant_manager_core::testing::Fixture;
use tenant_manager_core::{Error, QuotaEnforcer, RateKey, RateLimit, TenantId, UsageKind};
use tenant_manager_redis::{RedisPool, RedisQuotaEnforcer, UnavailablePolicy};
use tenant_manager_test_support::TestRedis;

async fn fixture() -> Fixture<dyn QuotaEnforcer, TestRedis> {
    let redis = TestRedis::create().await;
    let pool = support::pool(&redis).await;
    Fixture::with_guard(Arc::new(RedisQuotaEnforcer::new(&pool)), redis)
}

tenant_manager_core::quota_conformance!(fixture);

fn hour(limit: u64) -> RateLimit {
    RateLimit::new(limit, Duration::from_secs(3600)).expect("rate")
}

#[tokio::test]
async fn deployments_with_different_prefixes_do_not_share_limits() {
    let (one, two) = (TestRedis::create().await, TestRedis::create().await);
    let q1 = RedisQuotaEnforcer::new(&support::pool(&one).await);
    let q2 = RedisQuotaEnforcer::new(&support::pool(&two).await);
    let key = RateKey::tenant(TenantId::new());
    let limit = hour(1);
    assert!(q1.check_rate(&key, &limit, 1).await.expect("check").allowed);
    assert!(!q1.check_rate(&key, &limit, 1).await.expect("check").allowed);
    assert!(
        q2.check_rate(&key, &limit, 1).await.expect("check").allowed,
        "the other prefix has its own state"
    );
}

#[tokio::test]
async fn state_lives_under_the_prefix_and_expires_with_the_window() {
    let redis = TestRedis::create().await;
    let pool = support::pool(&redis).await;
    let q = RedisQuotaEnforcer::new(&pool);
    let tenant = TenantId::new();
    let limit = RateLimit::new(10, Duration::from_secs(60)).expect("rate");
    q.check_rate(&RateKey::tenant(tenant), &limit, 4)
        .await
        .expect("check");
    q.consume_usage(tenant, UsageKind::Users, 3, 10)
        .await
        .expect("usage");
    let keys: Vec<String> = pool
        .query(tenant_manager_redis::redis::cmd("KEYS").arg(format!("{}*", redis.prefix())))
        .await
        .expect("keys");
    assert_eq!(keys.len(), 2, "{keys:?}");
    let rate_key = keys
        .iter()
        .find(|k| k.contains(":rate:"))
        .expect("rate key");
    let ttl: i64 = pool
        .query(tenant_manager_redis::redis::cmd("PTTL").arg(rate_key))
        .await
        .expect("pttl");
    // Four of ten used: the state expires once the allowance is full again (24 s), never
    // later than the window.
    assert!((1..=24_000).contains(&ttl), "ttl {ttl}");
}

#[tokio::test]
async fn reset_after_matches_the_allowance_used() {
    let redis = TestRedis::create().await;
    let q = RedisQuotaEnforcer::new(&support::pool(&redis).await);
    let key = RateKey::tenant(TenantId::new());
    // 100 per 15 minutes, the seed's default: each request adds 9 s to the reset time.
    let limit = RateLimit::new(100, Duration::from_millis(900_000)).expect("rate");
    let first = q.check_rate(&key, &limit, 1).await.expect("check");
    let second = q.check_rate(&key, &limit, 1).await.expect("check");
    assert_eq!((first.remaining, second.remaining), (99, 98));
    assert!(first.reset_after <= Duration::from_secs(9));
    assert!(first.reset_after > Duration::from_secs(8));
    let grown = second.reset_after - first.reset_after;
    assert!(
        grown > Duration::from_secs(8) && grown <= Duration::from_secs(9),
        "{grown:?}"
    );
}

#[tokio::test]
async fn usage_amounts_beyond_exact_lua_numbers_are_refused() {
    let redis = TestRedis::create().await;
    let q = RedisQuotaEnforcer::new(&support::pool(&redis).await);
    let err = q
        .consume_usage(TenantId::new(), UsageKind::StorageBytes, i64::MAX, u64::MAX)
        .await
        .expect_err("too large");
    assert_eq!(err.field(), Some("amount"));
    let big = 1_i64 << 50;
    let d = q
        .consume_usage(TenantId::new(), UsageKind::StorageBytes, big, u64::MAX)
        .await
        .expect("consume");
    assert!(d.allowed);
    assert_eq!(d.used, big.unsigned_abs());
    assert_eq!(d.max, u64::MAX);
}

async fn unreachable_pool() -> RedisPool {
    let url = format!("redis://127.0.0.1:{}", support::dead_port());
    RedisPool::connect(support::fast_failing(&url))
        .await
        .expect("pool")
}

#[tokio::test]
async fn unreachable_redis_follows_the_unavailable_policy() {
    let pool = unreachable_pool().await;
    let key = RateKey::tenant(TenantId::new());
    let limit = hour(10);
    let limit_ref = &limit;
    let key_ref = &key;
    let check = |policy| {
        let q = RedisQuotaEnforcer::new(&pool).with_unavailable_policy(policy);
        async move { support::within(Duration::from_secs(5), q.check_rate(key_ref, limit_ref, 1)).await }
    };

    let err = check(UnavailablePolicy::ReportError)
        .await
        .expect_err("reported");
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(err.is_retryable());

    let open = check(UnavailablePolicy::FailOpen).await.expect("fail open");
    assert!(open.allowed);
    assert_eq!((open.limit, open.remaining), (10, 9));

    let retry_after = Duration::from_secs(7);
    let closed = check(UnavailablePolicy::FailClosed { retry_after })
        .await
        .expect("fail closed");
    assert!(!closed.allowed);
    assert_eq!(closed.retry_after, Some(retry_after));

    // Callers that ask always hear about it, whatever the policy; usage calls report too.
    let q = RedisQuotaEnforcer::new(&pool).with_unavailable_policy(UnavailablePolicy::FailOpen);
    let err = q.try_check_rate(&key, &limit, 1).await.expect_err("asked");
    assert!(matches!(err, Error::Unavailable { .. }));
    let err = q
        .consume_usage(TenantId::new(), UsageKind::Users, 1, 10)
        .await
        .expect_err("usage");
    assert!(matches!(err, Error::Unavailable { .. }));
    // Bad input is still bad input, with or without Redis.
    let err = q.check_rate(&key, &limit, 0).await.expect_err("cost 0");
    assert_eq!(err.field(), Some("cost"));
}
