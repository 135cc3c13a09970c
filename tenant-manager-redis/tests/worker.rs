//! The provisioning worker of tenant-manager-core running unchanged on `RedisJobQueue` (with the
//! Redis quota enforcer and tenant cache), including a worker killed in the middle of a job.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use tenant_manager_core::auth::{HasherConfig, JwtConfig, PasswordHasher, TokenService};
use tenant_manager_core::lifecycle::testing::assert_slow_job_keeps_its_lease;
use tenant_manager_core::manager::{ManagerConfig, Registration, TenantManager};
use tenant_manager_core::memory::{InMemoryProvisioner, InMemoryRegistry, InMemoryTenantData};
use tenant_manager_core::testing::faults::{Failure, FlakyProvisioner};
use tenant_manager_core::worker::{ProvisioningWorker, WorkerConfig};
use tenant_manager_core::{
    CacheKey, JobQueue, Provisioner, QueueStats, TenantCache, TenantId, TenantRegistry,
    TenantStatus,
};
use tenant_manager_redis::{
    JobQueueConfig, RedisJobQueue, RedisQuotaEnforcer, RedisTenantCache, TenantCacheConfig,
};
use tenant_manager_test_support::TestRedis;
use tokio_util::sync::CancellationToken;

const VISIBILITY: Duration = Duration::from_secs(1);

struct Setup {
    manager: TenantManager,
    registry: Arc<dyn TenantRegistry>,
    provisioner: Arc<dyn Provisioner>,
    jobs: Arc<RedisJobQueue>,
    cache: Arc<RedisTenantCache>,
    _redis: TestRedis,
}

async fn setup() -> Setup {
    let redis = TestRedis::create().await;
    let pool = support::pool(&redis).await;
    let jobs = Arc::new(
        RedisJobQueue::new(
            &pool,
            JobQueueConfig::default()
                .with_visibility_timeout(VISIBILITY)
                .with_poll_interval(Duration::from_millis(100)),
        )
        .expect("queue"),
    );
    let cache = Arc::new(
        RedisTenantCache::new(&pool, TenantCacheConfig::default())
            .await
            .expect("cache"),
    );
    let registry: Arc<dyn TenantRegistry> = Arc::new(InMemoryRegistry::new());
    let provisioner: Arc<dyn Provisioner> = Arc::new(InMemoryProvisioner::new(Arc::new(
        InMemoryTenantData::new(),
    )));
    let manager = TenantManager::builder()
        .with_registry(registry.clone())
        .with_provisioner(provisioner.clone())
        .with_quota(Arc::new(RedisQuotaEnforcer::new(&pool)))
        .with_cache(cache.clone())
        .with_jobs(jobs.clone())
        .with_hasher(
            PasswordHasher::new(HasherConfig::default().with_params(256, 1, 1)).expect("hasher"),
        )
        .with_tokens(
            TokenService::new(JwtConfig::hs256(
                "0123456789abcdef0123456789abcdef-test-only",
            ))
            .expect("tokens"),
        )
        .with_config(ManagerConfig::default().with_async_provisioning(true))
        .build()
        .expect("manager");
    Setup {
        manager,
        registry,
        provisioner,
        jobs,
        cache,
        _redis: redis,
    }
}

fn worker_config(consumer: &str) -> WorkerConfig {
    WorkerConfig::default()
        .with_consumer(consumer)
        .with_poll_wait(Duration::from_millis(200))
        .with_retry(Duration::from_millis(5), Duration::from_millis(20))
        .with_shutdown_grace(Duration::from_millis(20))
}

async fn register(s: &Setup, name: &str) -> TenantId {
    let email = format!("owner@{}.test", name.to_ascii_lowercase());
    let registered = s
        .manager
        .register_organization(Registration::new(name, email, "Test123!"))
        .await
        .expect("register");
    assert_eq!(registered.tenant.status, TenantStatus::Provisioning);
    registered.tenant.id
}

async fn wait_active(s: &Setup, tenant: TenantId) {
    support::eventually(Duration::from_secs(10), "tenant active", || async {
        s.manager.get(tenant).await.expect("get").status == TenantStatus::Active
    })
    .await;
}

/// Runs `worker` until `tenant` is active, stops it, and checks the queue is left empty.
async fn run_until_active(s: &Setup, worker: ProvisioningWorker, tenant: TenantId) {
    let shutdown = CancellationToken::new();
    let running = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { worker.run(shutdown).await }
    });
    wait_active(s, tenant).await;
    shutdown.cancel();
    running.await.expect("worker stopped");
    assert_eq!(
        s.jobs.stats().await.expect("stats"),
        QueueStats::new(0, 0, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provisioning_worker_runs_on_the_redis_queue() {
    let s = setup().await;
    let tenant = register(&s, "Acme").await;
    let worker = s.manager.worker(worker_config("worker-1")).expect("worker");
    run_until_active(&s, worker, tenant).await;
    let cached = s.cache.get(&CacheKey::Id(tenant)).await.expect("cache");
    assert!(
        cached.is_none_or(|t| t.status == TenantStatus::Active),
        "the cache never serves the pre-provisioning record"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_job_leaves_the_job_to_another_worker() {
    let s = setup().await;
    let tenant = register(&s, "Globex").await;

    let hanging = Arc::new(FlakyProvisioner::new(
        Arc::new(InMemoryProvisioner::new(
            Arc::new(InMemoryTenantData::new()),
        )),
        Failure::Hang,
    ));
    let doomed = ProvisioningWorker::new(
        s.jobs.clone(),
        s.registry.clone(),
        hanging.clone(),
        worker_config("doomed"),
    )
    .expect("worker");
    let doomed_task = tokio::spawn(async move { doomed.run(CancellationToken::new()).await });
    support::within(Duration::from_secs(10), hanging.called()).await;
    // The process dies: its task is dropped mid-job, without ack or nack.
    doomed_task.abort();
    let _ = doomed_task.await;
    assert_eq!(s.jobs.stats().await.expect("stats").in_flight, 1);

    let survivor = ProvisioningWorker::new(
        s.jobs.clone(),
        s.registry.clone(),
        s.provisioner.clone(),
        worker_config("survivor"),
    )
    .expect("worker");
    run_until_active(&s, survivor, tenant).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_longer_than_the_visibility_timeout_keeps_its_lease_and_runs_once() {
    let s = setup().await;
    let tenant = register(&s, "Initech").await;
    let slow = Arc::new(FlakyProvisioner::new(
        Arc::new(InMemoryProvisioner::new(
            Arc::new(InMemoryTenantData::new()),
        )),
        Failure::Slow(VISIBILITY * 3),
    ));
    let holder = ProvisioningWorker::new(
        s.jobs.clone(),
        s.registry.clone(),
        slow.clone(),
        worker_config("holder"),
    )
    .expect("worker");
    let other = ProvisioningWorker::new(
        s.jobs.clone(),
        s.registry.clone(),
        s.provisioner.clone(),
        worker_config("other"),
    )
    .expect("worker");

    // "holder" runs the job for three visibility timeouts while "other" keeps polling.
    assert_slow_job_keeps_its_lease(&holder, &other, &slow).await;
    assert_eq!(
        s.manager.get(tenant).await.expect("get").status,
        TenantStatus::Active
    );
    assert_eq!(
        s.jobs.stats().await.expect("stats"),
        QueueStats::new(0, 0, 0)
    );
}
