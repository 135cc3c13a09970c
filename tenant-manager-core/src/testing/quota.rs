//! Conformance suite of [`QuotaEnforcer`]: one case per behaviour, and [`quota_conformance!`].
//!
//! Every case uses fresh tenant ids and rate keys, so cases can share a backend. Rate cases use
//! either a long window (nothing replenishes while the case runs, so counts are exact) or a short
//! one with sleeps (and then assert only what waiting guarantees).
//!
//! [`quota_conformance!`]: crate::quota_conformance

use std::time::Duration;

use super::run_concurrently;
use crate::domain::{RateLimit, TenantId};
use crate::error::Error;
use crate::traits::{QuotaEnforcer, RateDecision, RateKey, UsageKind};

/// Expands one `#[tokio::test]` per case of [`crate::testing::quota`] against the adapter that
/// `$factory` (an `async fn() -> Fixture<dyn QuotaEnforcer>`) builds.
#[macro_export]
macro_rules! quota_conformance {
    ($factory:path) => {
        $crate::__conformance_cases!($factory; quota;
            concurrent_checks_admit_exactly_the_limit,
            remaining_counts_down_to_zero,
            refusal_says_when_to_retry,
            allowance_replenishes_over_time,
            costs_weigh_requests,
            keys_are_limited_independently,
            concurrent_usage_never_exceeds_max,
            usage_is_released_and_never_negative,
            set_usage_overwrites_one_kind_of_one_tenant,
            reset_tenant_forgets_rate_and_usage,
            invalid_input_is_refused,
        );
    };
}

fn rate(limit: u64, window: Duration) -> RateLimit {
    RateLimit::new(limit, window).expect("valid rate limit")
}

/// A limit that does not replenish while a case runs.
fn long(limit: u64) -> RateLimit {
    rate(limit, Duration::from_secs(3_600))
}

fn fresh_key() -> RateKey {
    RateKey::tenant(TenantId::new())
}

async fn check(q: &dyn QuotaEnforcer, key: &RateKey, limit: &RateLimit) -> RateDecision {
    q.check_rate(key, limit, 1).await.expect("check_rate")
}

/// Interval between two requests at a steady rate, plus 1 ms for backends with ms clocks.
fn interval_with_slack(limit: &RateLimit) -> Duration {
    limit.window() / u32::try_from(limit.limit).expect("small limit") + Duration::from_millis(1)
}

/// 1,000 parallel checks against a limit of 50 admit exactly 50; every refusal says when to retry.
pub async fn concurrent_checks_admit_exactly_the_limit(q: &dyn QuotaEnforcer) {
    let key = fresh_key();
    let limit = long(50);
    let decisions = run_concurrently(1_000, |_| q.check_rate(&key, &limit, 1));
    let decisions: Vec<RateDecision> = decisions
        .into_iter()
        .map(|d| d.expect("check_rate"))
        .collect();
    let admitted = decisions.iter().filter(|d| d.allowed).count();
    assert_eq!(admitted, 50, "exactly the limit is admitted");
    for d in decisions.iter().filter(|d| !d.allowed) {
        assert_eq!(d.remaining, 0);
        assert!(d.retry_after.is_some_and(|r| r > Duration::ZERO), "{d:?}");
    }
    let mut remaining: Vec<u64> = decisions
        .iter()
        .filter(|d| d.allowed)
        .map(|d| d.remaining)
        .collect();
    remaining.sort_unstable();
    assert_eq!(
        remaining,
        (0..50).collect::<Vec<u64>>(),
        "each admission saw its own remaining"
    );
}

/// Sequential checks report the limit, a remaining count going down by one, and a reset time.
pub async fn remaining_counts_down_to_zero(q: &dyn QuotaEnforcer) {
    let key = fresh_key();
    let limit = long(5);
    let mut last_reset = Duration::ZERO;
    for expected in (0..5).rev() {
        let d = check(q, &key, &limit).await;
        assert!(d.allowed, "{d:?}");
        assert_eq!((d.limit, d.remaining), (5, expected), "{d:?}");
        assert_eq!(d.retry_after, None);
        assert!(d.reset_after > Duration::ZERO && d.reset_after <= limit.window());
        assert!(
            d.reset_after >= last_reset,
            "reset grows as the allowance is spent"
        );
        last_reset = d.reset_after;
    }
    let d = check(q, &key, &limit).await;
    assert!(!d.allowed, "{d:?}");
    assert_eq!((d.limit, d.remaining), (5, 0));
}

/// A refusal carries a retry-after no longer than one request interval, and converts to a
/// retryable `QuotaExceeded` error.
pub async fn refusal_says_when_to_retry(q: &dyn QuotaEnforcer) {
    let key = fresh_key();
    let limit = long(2);
    for _ in 0..2 {
        assert!(check(q, &key, &limit).await.allowed);
    }
    let refused = check(q, &key, &limit).await;
    assert!(!refused.allowed);
    let retry = refused.retry_after.expect("a refusal has retry_after");
    assert!(
        retry > Duration::ZERO && retry <= interval_with_slack(&limit),
        "{retry:?}"
    );
    assert!(refused.reset_after <= limit.window() + Duration::from_millis(1));
    let err = refused.into_result().expect_err("refused");
    assert_eq!(err.code(), "quota_exceeded");
    assert!(err.is_retryable());
    assert_eq!(err.retry_after(), Some(retry));
}

/// With 5 per 500 ms: after waiting the refusal's retry-after one more request is admitted, and
/// after a whole window the whole burst is back.
pub async fn allowance_replenishes_over_time(q: &dyn QuotaEnforcer) {
    let key = fresh_key();
    let limit = rate(5, Duration::from_millis(500));
    let mut admitted = 0;
    let refused = loop {
        let d = check(q, &key, &limit).await;
        if !d.allowed {
            break d;
        }
        admitted += 1;
        assert!(admitted <= 50, "the limit never refused");
    };
    assert!(admitted >= 5, "the whole burst was admitted first");
    let retry = refused.retry_after.expect("a refusal has retry_after");
    assert!(retry <= interval_with_slack(&limit), "{retry:?}");
    tokio::time::sleep(retry + Duration::from_millis(2)).await;
    assert!(
        check(q, &key, &limit).await.allowed,
        "admitted after retry_after"
    );

    tokio::time::sleep(limit.window() + Duration::from_millis(20)).await;
    for i in 0..5 {
        assert!(
            check(q, &key, &limit).await.allowed,
            "burst request {i} after a window"
        );
    }
}

/// A request of cost 3 consumes three from the allowance; one that does not fit is refused and
/// consumes nothing.
pub async fn costs_weigh_requests(q: &dyn QuotaEnforcer) {
    let key = fresh_key();
    let limit = long(5);
    let d = q.check_rate(&key, &limit, 3).await.expect("check_rate");
    assert!(d.allowed);
    assert_eq!(d.remaining, 2);
    let d = q.check_rate(&key, &limit, 3).await.expect("check_rate");
    assert!(!d.allowed, "3 more do not fit in 2");
    assert_eq!(d.remaining, 2, "a refusal consumes nothing");
    assert!(d.retry_after.is_some());
    let d = q.check_rate(&key, &limit, 2).await.expect("check_rate");
    assert!(d.allowed);
    assert_eq!(d.remaining, 0);
}

/// Spending one key's allowance leaves other keys, tenant or custom, untouched.
pub async fn keys_are_limited_independently(q: &dyn QuotaEnforcer) {
    let limit = long(2);
    let spent = fresh_key();
    for _ in 0..3 {
        check(q, &spent, &limit).await;
    }
    let custom = RateKey::custom(&format!("conformance-{}", TenantId::new())).expect("custom key");
    let addr = std::net::IpAddr::from([192, 0, 2, 1]);
    let client = RateKey::client(addr);
    for other in [fresh_key(), custom] {
        let d = check(q, &other, &limit).await;
        assert!(d.allowed && d.remaining == 1, "{other:?}: {d:?}");
    }
    // A client key is shared by design; only check it answers.
    check(q, &client, &limit).await;
}

/// 200 parallel consumptions of 1 against a max of 50: exactly 50 succeed, usage ends at 50.
pub async fn concurrent_usage_never_exceeds_max(q: &dyn QuotaEnforcer) {
    let tenant = TenantId::new();
    let decisions = run_concurrently(200, |_| q.consume_usage(tenant, UsageKind::Users, 1, 50));
    let mut allowed = 0;
    for d in decisions {
        let d = d.expect("consume_usage");
        assert!(d.used <= 50 && d.max == 50, "{d:?}");
        allowed += usize::from(d.allowed);
    }
    assert_eq!(allowed, 50);
    assert_eq!(q.usage(tenant, UsageKind::Users).await.expect("usage"), 50);
}

/// Consumption past max is refused without change; negative amounts release, never below zero;
/// kinds are counted apart.
pub async fn usage_is_released_and_never_negative(q: &dyn QuotaEnforcer) {
    let tenant = TenantId::new();
    let kind = UsageKind::StorageBytes;
    let consume = |amount: i64| q.consume_usage(tenant, kind, amount, 50);
    let d = consume(30).await.expect("consume");
    assert!(d.allowed && d.used == 30 && d.max == 50, "{d:?}");
    let d = consume(25).await.expect("consume");
    assert!(!d.allowed && d.used == 30, "refused, unchanged: {d:?}");
    let d = consume(-10).await.expect("release");
    assert!(d.allowed && d.used == 20, "{d:?}");
    let d = consume(-100).await.expect("release");
    assert!(d.allowed && d.used == 0, "never below zero: {d:?}");
    assert_eq!(q.usage(tenant, kind).await.expect("usage"), 0);
    let d = consume(50).await.expect("consume");
    assert!(d.allowed && d.used == 50, "up to max inclusive: {d:?}");
    assert_eq!(q.usage(tenant, UsageKind::Users).await.expect("usage"), 0);
    let other = TenantId::new();
    assert_eq!(q.usage(other, kind).await.expect("usage"), 0);
}

/// `set_usage` replaces the tenant's usage of one kind (up, down, to zero), and nothing else;
/// a later `consume_usage` counts from the value set.
pub async fn set_usage_overwrites_one_kind_of_one_tenant(q: &dyn QuotaEnforcer) {
    let (tenant, other) = (TenantId::new(), TenantId::new());
    let kind = UsageKind::StorageBytes;
    q.consume_usage(tenant, UsageKind::Users, 2, 10)
        .await
        .expect("consume");
    q.set_usage(tenant, kind, 5_000_000_000).await.expect("set");
    assert_eq!(q.usage(tenant, kind).await.expect("usage"), 5_000_000_000);
    q.set_usage(tenant, kind, 40).await.expect("set lower");
    assert_eq!(q.usage(tenant, kind).await.expect("usage"), 40);
    let d = q
        .consume_usage(tenant, kind, 20, 50)
        .await
        .expect("consume");
    assert!(
        !d.allowed && d.used == 40,
        "counts from the value set: {d:?}"
    );
    q.set_usage(tenant, kind, 0).await.expect("set zero");
    assert_eq!(q.usage(tenant, kind).await.expect("usage"), 0);
    assert_eq!(q.usage(tenant, UsageKind::Users).await.expect("usage"), 2);
    assert_eq!(q.usage(other, kind).await.expect("usage"), 0);
}

/// `reset_tenant` forgets the tenant's rate and usage, and nobody else's.
pub async fn reset_tenant_forgets_rate_and_usage(q: &dyn QuotaEnforcer) {
    let (tenant, bystander) = (TenantId::new(), TenantId::new());
    let limit = long(3);
    for t in [tenant, bystander] {
        for _ in 0..3 {
            assert!(check(q, &RateKey::tenant(t), &limit).await.allowed);
        }
        q.consume_usage(t, UsageKind::Users, 5, 10)
            .await
            .expect("consume");
        q.consume_usage(t, UsageKind::StorageBytes, 7, 10)
            .await
            .expect("consume");
    }
    q.reset_tenant(tenant).await.expect("reset_tenant");
    let d = check(q, &RateKey::tenant(tenant), &limit).await;
    assert!(d.allowed && d.remaining == 2, "a fresh allowance: {d:?}");
    assert_eq!(q.usage(tenant, UsageKind::Users).await.expect("usage"), 0);
    assert_eq!(
        q.usage(tenant, UsageKind::StorageBytes)
            .await
            .expect("usage"),
        0
    );
    assert!(!check(q, &RateKey::tenant(bystander), &limit).await.allowed);
    assert_eq!(
        q.usage(bystander, UsageKind::Users).await.expect("usage"),
        5
    );
    q.reset_tenant(TenantId::new())
        .await
        .expect("reset of an unknown tenant");
}

/// Cost 0, cost above the limit, a zero limit and a zero window are `InvalidInput`.
pub async fn invalid_input_is_refused(q: &dyn QuotaEnforcer) {
    let key = fresh_key();
    let field = |e: Error| {
        assert_eq!(e.code(), "invalid_input", "{e}");
        e.field().map(str::to_owned)
    };
    let err = q.check_rate(&key, &long(5), 0).await.expect_err("cost 0");
    assert_eq!(field(err).as_deref(), Some("cost"));
    let err = q
        .check_rate(&key, &long(5), 6)
        .await
        .expect_err("cost > limit");
    assert_eq!(field(err).as_deref(), Some("cost"));
    let zero_limit = RateLimit {
        limit: 0,
        window_ms: 1_000,
    };
    let err = q
        .check_rate(&key, &zero_limit, 1)
        .await
        .expect_err("limit 0");
    assert!(field(err).is_some_and(|f| f.contains("limit")));
    let zero_window = RateLimit {
        limit: 5,
        window_ms: 0,
    };
    let err = q
        .check_rate(&key, &zero_window, 1)
        .await
        .expect_err("window 0");
    assert!(field(err).is_some_and(|f| f.contains("window")));
    let d = check(q, &key, &long(5)).await;
    assert!(
        d.allowed && d.remaining == 4,
        "bad calls consumed nothing: {d:?}"
    );
}
