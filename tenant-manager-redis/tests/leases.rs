//! `RedisConnectionLeases` against the real Redis: the connection leases suite.
#![allow(clippy::expect_used)]

mod support;

use std::sync::Arc;

use tenant_manager_core::ConnectionLeases;
use tenant_manager_core::testing::Fixture;
use tenant_manager_redis::RedisConnectionLeases;
use tenant_manager_test_support::TestRedis;

async fn fixture() -> Fixture<dyn ConnectionLeases, TestRedis> {
    let redis = TestRedis::create().await;
    let pool = support::pool(&redis).await;
    let leases: Arc<dyn ConnectionLeases> = Arc::new(RedisConnectionLeases::new(&pool));
    Fixture::with_guard(leases, redis)
}

tenant_manager_core::connection_leases_conformance!(fixture);
