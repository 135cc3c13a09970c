//! The cache's subscriber on a Redis Cluster it was seeded with one node of: an invalidation
//! published on a node beyond the seed (a replica added later, another master) reaches it,
//! since `PUBLISH` is broadcast over the cluster bus; and after the seed itself fails over to
//! its replica, the subscriber reconnects to a node it learned from the cluster and hears the
//! invalidations again (it used to retry the dead seed forever).
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use tenant_manager_core::TenantId;
use tenant_manager_redis::{
    Invalidation, InvalidationReceiver, RedisConfig, RedisPool, RedisTenantCache, TenantCacheConfig,
};
use tenant_manager_test_support::{PrivateRedisCluster, unique_suffix};

/// A hang detector for the waits of this test, not a measurement.
const PATIENCE: Duration = Duration::from_secs(20);

/// `PUBLISH` of `tenant`'s invalidation on the node at `port` only.
fn publish(cluster: &PrivateRedisCluster, port: u16, prefix: &str, tenant: TenantId) {
    let _: i64 = cluster.node_query(
        port,
        redis::cmd("PUBLISH")
            .arg(format!("{prefix}tenant-invalidate"))
            .arg(tenant.to_string()),
    );
}

/// Publishes `tenant`'s invalidation on the node at `port` until `heard` gets it (a message
/// published while the subscriber reconnects is lost, by design); false after `PATIENCE`.
async fn reaches(
    cluster: &PrivateRedisCluster,
    port: u16,
    prefix: &str,
    heard: &mut InvalidationReceiver,
) -> bool {
    let tenant = TenantId::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        tokio::task::block_in_place(|| publish(cluster, port, prefix, tenant));
        let round = tokio::time::Instant::now() + Duration::from_millis(300);
        while let Ok(next) = tokio::time::timeout_at(round, heard.recv()).await {
            if next.expect("feed open") == Invalidation::Tenant(tenant) {
                return true;
            }
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscriber_seeded_with_one_node_hears_the_whole_cluster_and_survives_its_failover() {
    let mut cluster = tokio::task::block_in_place(PrivateRedisCluster::start);
    let ports = cluster.ports().to_vec();
    let prefix = format!("tmtest:{}:", unique_suffix());
    let config = RedisConfig::cluster(vec![format!("redis://127.0.0.1:{}", ports[0])])
        .with_key_prefix(&prefix)
        .with_pool_size(4)
        .with_blocking_pool_size(4)
        .with_connect_timeout(Duration::from_millis(500))
        .with_retry_interval(Duration::from_millis(200));
    let pool = RedisPool::connect(config).await.expect("pool");
    let cache = RedisTenantCache::new(
        &pool,
        TenantCacheConfig::default().with_ping_interval(Duration::from_millis(200)),
    )
    .await
    .expect("cache");
    assert!(cache.wait_subscribed(PATIENCE).await, "subscribed");
    let mut heard = cache.subscribe_invalidations();

    // Nodes beyond the seed: another master, and a replica added after the subscription.
    assert!(reaches(&cluster, ports[2], &prefix, &mut heard).await);
    let replica = tokio::task::block_in_place(|| cluster.add_replica(0));
    assert!(
        reaches(&cluster, replica, &prefix, &mut heard).await,
        "published on a node added after the subscription"
    );

    // The seed fails over to its replica: the subscriber moves to a node it learned.
    let promoted = tokio::task::block_in_place(|| cluster.fail_over(0));
    assert_eq!(promoted, replica);
    assert!(
        reaches(&cluster, ports[1], &prefix, &mut heard).await,
        "heard again after the seed failed over"
    );
    assert!(
        reaches(&cluster, promoted, &prefix, &mut heard).await,
        "and from the promoted replica"
    );
    assert!(cache.wait_subscribed(PATIENCE).await, "subscribed again");
}
