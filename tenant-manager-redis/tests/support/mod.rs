//! Shared set-up of the integration tests: pools on the test Redis with a unique key prefix,
//! an address where nothing listens (private `redis-server` processes for outage tests are
//! `tenant_manager_test_support::PrivateRedis`).
#![allow(dead_code, unreachable_pub, missing_docs, clippy::expect_used)]

use std::time::Duration;

use tenant_manager_redis::{RedisConfig, RedisPool};
use tenant_manager_test_support::TestRedis;

/// Settings for the shared test Redis under `redis`'s unique prefix: a few connections, and
/// enough blocking ones for the parallel consumers of the queue suite.
pub fn config(redis: &TestRedis) -> RedisConfig {
    RedisConfig::new(redis.url())
        .with_key_prefix(redis.prefix())
        .with_pool_size(4)
        .with_blocking_pool_size(10)
}

/// A pool on the shared test Redis under `redis`'s unique prefix.
pub async fn pool(redis: &TestRedis) -> RedisPool {
    RedisPool::connect(config(redis)).await.expect("pool")
}

/// Settings for `url` (a private server or a dead port) with short timeouts, so outages are
/// reported fast.
pub fn fast_failing(url: &str) -> RedisConfig {
    RedisConfig::new(url)
        .with_pool_size(2)
        .with_blocking_pool_size(2)
        .with_connect_timeout(Duration::from_millis(300))
        .with_command_timeout(Duration::from_millis(300))
        .with_acquire_timeout(Duration::from_millis(500))
        .with_retry_interval(Duration::from_millis(50))
}

/// A local port where nothing listens (bound, read, released).
pub fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Fails the test if `call` has not finished within `limit`: a hang detector, not a
/// measurement (`limit` is generous).
pub async fn within<T>(limit: Duration, call: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, call)
        .await
        .unwrap_or_else(|_| panic!("still waiting after {limit:?}: the call hangs"))
}

/// Polls `check` every 20 ms until it returns true, failing after `limit`.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
