//! Every Redis component on a Redis Cluster: a private three-master cluster
//! (`PrivateRedisCluster`, one per test process) runs the quota (per request and leased), tenant
//! cache (one and two instances, each seeded through a different node), job queue, event bus
//! and schedule conformance suites, the host job suites and the lock; keys spread over more
//! than one master; an invalidation reaches a subscriber connected to a node that does not hold
//! the cache's slot.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tenant_manager_core::host_jobs::testing as host_jobs;
use tenant_manager_core::testing::Fixture;
use tenant_manager_core::testing::cache::{CacheCaps, CachePair, sample_tenant};
use tenant_manager_core::testing::jobs::JobQueueCaps;
use tenant_manager_core::{
    EventBus, EventKind, JobQueue, NewJob, QuotaEnforcer, RateKey, RateLimit, ScheduleStore,
    TenantCache, TenantId,
};
use tenant_manager_redis::{
    EventStreamConfig, Invalidation, JobQueueConfig, RateLeaseConfig, RedisConfig, RedisEventBus,
    RedisJobQueue, RedisLock, RedisPool, RedisQuotaEnforcer, RedisSchedules, RedisTenantCache,
    TenantCacheConfig,
};
use tenant_manager_test_support::{PrivateRedisCluster, unique_suffix};

/// A hang detector for the waits of these tests, not a measurement.
const PATIENCE: Duration = Duration::from_secs(10);

fn cluster() -> &'static PrivateRedisCluster {
    PrivateRedisCluster::shared()
}

/// A key prefix of its own for one test.
fn prefix() -> String {
    format!("tmtest:{}:", unique_suffix())
}

/// Cluster settings seeded with `seeds`, under `prefix`.
fn config(seeds: Vec<String>, prefix: &str) -> RedisConfig {
    RedisConfig::cluster(seeds)
        .with_key_prefix(prefix)
        .with_pool_size(4)
        .with_blocking_pool_size(10)
}

/// A pool on the cluster, seeded with every master.
async fn pool(prefix: &str) -> RedisPool {
    RedisPool::connect(config(cluster().urls(), prefix))
        .await
        .expect("pool")
}

mod quota {
    use super::*;

    async fn fixture() -> Fixture<dyn QuotaEnforcer> {
        Fixture::new(Arc::new(RedisQuotaEnforcer::new(&pool(&prefix()).await)))
    }

    tenant_manager_core::quota_conformance!(fixture);
}

mod quota_leased {
    use super::*;

    async fn fixture() -> Fixture<dyn QuotaEnforcer> {
        let q = RedisQuotaEnforcer::new(&pool(&prefix()).await)
            .with_rate_leases(RateLeaseConfig::default().with_limit_divisor(2))
            .expect("leases");
        Fixture::new(Arc::new(q))
    }

    tenant_manager_core::quota_conformance!(fixture);
}

const CACHE_TTL: Duration = Duration::from_secs(2);

async fn cache(pool: &RedisPool) -> RedisTenantCache {
    let config = TenantCacheConfig::default()
        .with_ttl(CACHE_TTL)
        .with_local_ttl(CACHE_TTL)
        .with_ping_interval(Duration::from_millis(200));
    let cache = RedisTenantCache::new(pool, config).await.expect("cache");
    assert!(cache.wait_subscribed(PATIENCE).await, "subscribed");
    cache
}

/// A cache whose pool (and so whose subscriber) is seeded through the master at `port` only.
async fn cache_via(port: u16, prefix: &str) -> RedisTenantCache {
    let url = format!("redis://127.0.0.1:{port}");
    let pool = RedisPool::connect(config(vec![url], prefix))
        .await
        .expect("pool");
    cache(&pool).await
}

mod cache_suite {
    use super::*;

    async fn fixture() -> Fixture<dyn TenantCache, (), CacheCaps> {
        let subject: Arc<dyn TenantCache> = Arc::new(cache(&pool(&prefix()).await).await);
        Fixture::new(subject).with_caps(CacheCaps::new(CACHE_TTL))
    }

    tenant_manager_core::cache_conformance!(fixture);

    /// Two instances seeded through different masters: their subscribers listen on different
    /// nodes.
    async fn pair() -> Fixture<CachePair, (), CacheCaps> {
        let prefix = prefix();
        let ports = cluster().ports();
        let pair = CachePair {
            a: Arc::new(cache_via(ports[0], &prefix).await),
            b: Arc::new(cache_via(ports[1], &prefix).await),
        };
        Fixture::new(Arc::new(pair)).with_caps(CacheCaps::new(CACHE_TTL))
    }

    mod pair {
        use super::pair;
        tenant_manager_core::cache_pair_conformance!(pair);
    }
}

const VISIBILITY: Duration = Duration::from_secs(1);
const ATTEMPTS: u32 = 3;

fn queue_config(name: &str) -> JobQueueConfig {
    JobQueueConfig::default()
        .with_name(name)
        .with_visibility_timeout(VISIBILITY)
        .with_max_attempts(ATTEMPTS)
        .with_poll_interval(Duration::from_millis(100))
}

mod queue {
    use super::*;

    async fn fixture() -> Fixture<dyn JobQueue, (), JobQueueCaps> {
        let queue: Arc<dyn JobQueue> = Arc::new(
            RedisJobQueue::new(&pool(&prefix()).await, queue_config("jobs")).expect("queue"),
        );
        Fixture::new(queue).with_caps(JobQueueCaps::new(VISIBILITY, ATTEMPTS))
    }

    tenant_manager_core::job_queue_conformance!(fixture);
}

fn event_config() -> EventStreamConfig {
    EventStreamConfig::default()
        .with_visibility_timeout(Duration::from_millis(500))
        .with_max_deliveries(3)
        .with_poll_interval(Duration::from_millis(100))
}

mod events {
    use super::*;

    async fn fixture() -> Fixture<dyn EventBus> {
        let bus: Arc<dyn EventBus> =
            Arc::new(RedisEventBus::new(&pool(&prefix()).await, event_config()).expect("bus"));
        Fixture::new(bus)
    }

    tenant_manager_core::event_bus_conformance!(fixture);
}

mod schedules {
    use super::*;

    async fn fixture() -> Fixture<dyn ScheduleStore> {
        let store: Arc<dyn ScheduleStore> =
            Arc::new(RedisSchedules::new(&pool(&prefix()).await, "host").expect("schedules"));
        Fixture::new(store)
    }

    tenant_manager_core::schedule_conformance!(fixture);
}

mod host_job_suites {
    use super::*;

    async fn queue(pool: &RedisPool) -> Arc<dyn JobQueue> {
        let config = queue_config("host-jobs").with_visibility_timeout(Duration::from_secs(5));
        Arc::new(RedisJobQueue::new(pool, config).expect("queue"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flood_does_not_starve_other_tenants() {
        host_jobs::a_flood_does_not_starve_other_tenants(queue(&pool(&prefix()).await).await)
            .await
            .expect("suite");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_of_suspended_tenants_are_held_and_of_deleted_ones_dropped() {
        let queue = queue(&pool(&prefix()).await).await;
        host_jobs::jobs_of_suspended_tenants_are_held_and_of_deleted_ones_dropped(queue)
            .await
            .expect("suite");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_instances_enqueue_one_job_per_tick() {
        let pool = pool(&prefix()).await;
        let schedules = RedisSchedules::new(&pool, "host").expect("schedules");
        host_jobs::two_instances_enqueue_one_job_per_tick(queue(&pool).await, Arc::new(schedules))
            .await
            .expect("suite");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lock_has_one_holder_and_only_its_owner_releases_it() {
    let lock = RedisLock::new(&pool(&prefix()).await);
    let held = lock
        .try_acquire("provision:acme", Duration::from_secs(30))
        .await
        .expect("acquire")
        .expect("free");
    let other = RedisLock::new(&pool(&prefix()).await);
    assert!(
        other
            .try_acquire("provision:acme", Duration::from_secs(30))
            .await
            .expect("acquire")
            .is_some(),
        "another prefix is another deployment"
    );
    assert!(
        lock.try_acquire("provision:acme", Duration::from_secs(30))
            .await
            .expect("acquire")
            .is_none(),
        "held"
    );
    assert!(held.release().await.expect("release"));
    assert!(
        lock.try_acquire("provision:acme", Duration::from_secs(30))
            .await
            .expect("acquire")
            .is_some(),
        "released"
    );
}

/// Keys of every component, for many tenants, queues and event streams: each master holds some
/// (one hash tag for everything would put them all on one master), and every component works.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_spread_over_the_masters() {
    let prefix = prefix();
    let pool = pool(&prefix).await;
    let quotas = RedisQuotaEnforcer::new(&pool);
    let limit = RateLimit::new(10, Duration::from_secs(3600)).expect("limit");
    for _ in 0..30 {
        let decision = quotas
            .check_rate(&RateKey::tenant(TenantId::new()), &limit, 1)
            .await
            .expect("check");
        assert!(decision.allowed);
    }
    for name in ["a", "b", "c", "d", "e", "f"] {
        let queue = RedisJobQueue::new(&pool, queue_config(name)).expect("queue");
        queue
            .enqueue(
                NewJob::new("test.job", Some(TenantId::new()), serde_json::json!({})).expect("job"),
            )
            .await
            .expect("enqueue");
        let job = queue
            .dequeue("worker-1", PATIENCE)
            .await
            .expect("dequeue")
            .expect("a job");
        queue.ack(&job).await.expect("ack");
    }
    let lock = RedisLock::new(&pool);
    let mut guards = Vec::new();
    for n in 0..10 {
        guards.push(
            lock.try_acquire(&format!("job:{n}"), Duration::from_secs(60))
                .await
                .expect("lock")
                .expect("free"),
        );
    }
    let per_master = cluster().keys_per_master(&prefix);
    assert_eq!(per_master.len(), 3);
    let total: usize = per_master.iter().sum();
    assert!(total >= 30 + 6 + 10, "keys written: {per_master:?}");
    assert!(
        per_master.iter().all(|&n| n > 0),
        "every master holds keys of this deployment: {per_master:?}"
    );
    for guard in guards {
        assert!(guard.release().await.expect("release"));
    }
}

/// An invalidation made through the master that holds the cache's slot reaches an instance
/// whose subscriber is connected to another master.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_invalidation_reaches_a_subscriber_on_another_node() {
    let cluster = cluster();
    let ports = cluster.ports();
    let slot: u16 = cluster.node_query(
        ports[0],
        redis::cmd("CLUSTER").arg("KEYSLOT").arg("{tenant-cache}"),
    );
    let owner = cluster.master_of_slot(slot);
    let elsewhere = ports
        .iter()
        .copied()
        .find(|&p| p != owner)
        .expect("a second master");
    let prefix = prefix();
    let writer = cache_via(owner, &prefix).await;
    let reader = cache_via(elsewhere, &prefix).await;
    let mut heard = reader.subscribe_invalidations();

    let tenant = sample_tenant();
    writer.put(&tenant).await.expect("put");
    let cached = reader
        .lookup(&tenant_manager_core::CacheKey::Id(tenant.id))
        .await
        .expect("lookup");
    assert!(
        matches!(cached, tenant_manager_core::CacheLookup::Hit(_)),
        "the reader sees the writer's record"
    );
    writer.invalidate(tenant.id).await.expect("invalidate");

    let mut seen = HashSet::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !seen.contains(&tenant.id) {
        let next = tokio::time::timeout_at(deadline, heard.recv())
            .await
            .expect("the invalidation reached the other node's subscriber")
            .expect("feed open");
        if let Invalidation::Tenant(id) = next {
            seen.insert(id);
        }
    }
    assert!(matches!(
        reader
            .lookup(&tenant_manager_core::CacheKey::Id(tenant.id))
            .await
            .expect("lookup"),
        tenant_manager_core::CacheLookup::Miss(_)
    ));
}

/// Consumer groups on the cluster: a blocking read, an ack, and a rejection, which moves the
/// event to the group's dead letters and acks it in one `MULTI` (two keys, one slot).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_group_delivers_acks_and_dead_letters() {
    let pool = pool(&prefix()).await;
    let bus = RedisEventBus::new(&pool, event_config()).expect("bus");
    let group = bus.group("webhooks").expect("group");
    assert!(
        group
            .receive("init", Duration::ZERO)
            .await
            .expect("receive")
            .is_none()
    );
    let first = tenant_manager_core::testing::events::sample_event(EventKind::Provisioned);
    let second = tenant_manager_core::testing::events::sample_event(EventKind::Provisioned);
    bus.publish(&first).await.expect("publish");
    bus.publish(&second).await.expect("publish");
    let got = group
        .receive("worker", PATIENCE)
        .await
        .expect("receive")
        .expect("an event");
    assert_eq!(got.event.id, first.id);
    group.ack(&got).await.expect("ack");
    let got = group
        .receive("worker", PATIENCE)
        .await
        .expect("receive")
        .expect("an event");
    assert_eq!(got.event.id, second.id);
    group.reject(&got, "HTTP 410").await.expect("reject");
    let dead = group.dead_letters(10).await.expect("dead letters");
    let dead: Vec<_> = dead
        .iter()
        .map(|d| (d.event.id, d.error.as_str()))
        .collect();
    assert_eq!(dead, [(second.id, "HTTP 410")]);
    assert!(
        group
            .receive("worker", Duration::from_millis(200))
            .await
            .expect("receive")
            .is_none(),
        "nothing left pending"
    );
}
