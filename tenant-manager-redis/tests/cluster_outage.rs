//! Outages of a Redis Cluster: a cluster nobody answers for is reported unavailable at once
//! (fail-fast, as a single server), and a master that crashes makes calls on its slots
//! unavailable (never a hang nor an internal error) until it is back, when the pool picks it up
//! again without a restart of the process.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::time::Duration;

use tenant_manager_core::{Error, QuotaEnforcer, RateKey, RateLimit, TenantId};
use tenant_manager_redis::{RedisConfig, RedisPool, RedisQuotaEnforcer};
use tenant_manager_test_support::{PrivateRedisCluster, unique_suffix};

/// A hang detector, not a measurement.
const PATIENCE: Duration = Duration::from_secs(20);

/// Cluster settings for `seeds` with the short timeouts of the single-server outage tests.
fn fast_failing(seeds: Vec<String>) -> RedisConfig {
    let single = support::fast_failing("redis://unused");
    RedisConfig::cluster(seeds)
        .with_key_prefix(format!("tmtest:{}:", unique_suffix()))
        .with_pool_size(single.pool_size)
        .with_blocking_pool_size(single.blocking_pool_size)
        .with_connect_timeout(single.connect_timeout)
        .with_command_timeout(single.command_timeout)
        .with_acquire_timeout(single.acquire_timeout)
        .with_retry_interval(single.retry_interval)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cluster_is_reported_unavailable() {
    let seeds = vec![
        format!("redis://127.0.0.1:{}", support::dead_port()),
        format!("redis://127.0.0.1:{}", support::dead_port()),
    ];
    let pool = RedisPool::connect(fast_failing(seeds)).await.expect("pool");
    for _ in 0..3 {
        let err = support::within(PATIENCE, pool.ping())
            .await
            .expect_err("nobody answers");
        assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    }
}

/// Rate checks of `n` fresh tenants (their keys spread over every master): how many were
/// answered; any error other than `Unavailable` fails the test.
async fn answered(quotas: &RedisQuotaEnforcer, n: usize) -> usize {
    let limit = RateLimit::new(10, Duration::from_secs(3600)).expect("limit");
    let mut ok = 0;
    for _ in 0..n {
        let key = RateKey::tenant(TenantId::new());
        match support::within(PATIENCE, quotas.check_rate(&key, &limit, 1)).await {
            Ok(decision) => {
                assert!(decision.allowed);
                ok += 1;
            }
            Err(Error::Unavailable { .. }) => {}
            Err(other) => panic!("a lost master must read as unavailable: {other:?}"),
        }
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crashed_master_is_unavailable_until_it_is_back() {
    let mut cluster = tokio::task::spawn_blocking(PrivateRedisCluster::start)
        .await
        .expect("cluster");
    let pool = RedisPool::connect(fast_failing(cluster.urls()))
        .await
        .expect("pool");
    let quotas = RedisQuotaEnforcer::new(&pool);
    assert_eq!(answered(&quotas, 30).await, 30, "healthy cluster");

    cluster.kill_node(1);
    let during = answered(&quotas, 30).await;
    assert!(
        during < 30,
        "keys of the lost master's slots cannot be answered"
    );

    let cluster = tokio::task::spawn_blocking(move || {
        cluster.restart_node(1);
        cluster
    })
    .await
    .expect("restart");
    support::eventually(PATIENCE, "every call answered again", || async {
        answered(&quotas, 30).await == 30
    })
    .await;
    drop(cluster);
}
