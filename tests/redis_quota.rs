//! The Redis quota through the facade: a tenant's rate limit admits exactly its limit under
//! concurrent checks on real Redis, refuses the rest with a retry time, and leaves another
//! tenant's budget untouched.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures::future::join_all;
use tenant_manager::redis::{RedisConfig, RedisPool, RedisQuotaEnforcer};
use tenant_manager::{QuotaEnforcer, RateKey, RateLimit, TenantId};
use tenant_manager_test_support::TestRedis;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_gets_exactly_its_limit_and_no_more() {
    let redis = TestRedis::create().await;
    let config = RedisConfig::new(redis.url()).with_key_prefix(redis.prefix());
    let pool = RedisPool::connect(config).await.expect("pool");
    let quota = RedisQuotaEnforcer::new(&pool);
    let limit = RateLimit::new(5, Duration::from_secs(60)).expect("limit");
    let (busy, quiet) = (
        RateKey::tenant(TenantId::new()),
        RateKey::tenant(TenantId::new()),
    );

    let decisions: Vec<_> = join_all((0..20).map(|_| quota.check_rate(&busy, &limit, 1)))
        .await
        .into_iter()
        .map(|d| d.expect("check"))
        .collect();
    let admitted = decisions.iter().filter(|d| d.allowed).count();
    assert_eq!(admitted, 5, "{decisions:?}");
    for refused in decisions.iter().filter(|d| !d.allowed) {
        assert_eq!(refused.remaining, 0);
        assert!(refused.retry_after.is_some_and(|r| r > Duration::ZERO));
    }

    let other = quota.check_rate(&quiet, &limit, 1).await.expect("check");
    assert!(other.allowed);
    assert_eq!(other.remaining, 4, "the other tenant's budget is its own");
}
