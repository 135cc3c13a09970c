//! Quotas, the tenant cache and the job queue in Redis, shared by every instance.

use std::sync::Arc;
use std::time::Duration;

use tenant_manager::redis::{
    EventStreamConfig, JobQueueConfig, RedisConfig, RedisConnectionLeases, RedisEventBus,
    RedisJobQueue, RedisLock, RedisPool, RedisQuotaEnforcer, RedisSchedules, RedisTenantCache,
    TenantCacheConfig,
};
use tenant_manager::{BoxError, Secret, async_trait};

use super::Shared;
use crate::config::{Config, RedisRateMode};
use crate::readiness::{Probe, Readiness};
use crate::startup_error::StartupError;

/// How long a delivered provisioning job stays with its worker without a renewal: a job held
/// by an instance that crashed (SIGKILL, OOM, lost node) goes to another instance's worker
/// after this (plus its poll interval). Running jobs keep it, as the worker renews the lease
/// every third of it.
const JOB_LEASE: Duration = Duration::from_secs(30);

/// `PING` through the adapters' own pool.
#[derive(Debug)]
struct PoolProbe(RedisPool);

#[async_trait]
impl Probe for PoolProbe {
    async fn check(&self) -> Result<(), BoxError> {
        self.0.ping().await.map_err(Into::into)
    }
}

/// Connects the pool and builds the three adapters, with a readiness probe of Redis.
pub(super) async fn connect(
    config: &Config,
    url: &Secret,
) -> Result<(Shared, Readiness), StartupError> {
    let fail = |e| StartupError::backend("redis", e);
    let mut redis = RedisConfig::new(url.expose()).with_cluster(config.redis.cluster);
    if let Some(prefix) = &config.redis.key_prefix {
        redis = redis.with_key_prefix(prefix.clone());
    }
    let pool = RedisPool::connect(redis).await.map_err(fail)?;
    let cache = RedisTenantCache::new(&pool, TenantCacheConfig::default())
        .await
        .map_err(fail)?;
    let queue = JobQueueConfig::default().with_visibility_timeout(JOB_LEASE);
    let jobs = RedisJobQueue::new(&pool, queue).map_err(fail)?;
    let host_queue = JobQueueConfig::default()
        .with_name("host-jobs")
        .with_visibility_timeout(JOB_LEASE);
    let host_queue = RedisJobQueue::new(&pool, host_queue).map_err(fail)?;
    let schedules = RedisSchedules::new(&pool, "host-jobs").map_err(fail)?;
    let quota = match config.redis.rate_mode {
        RedisRateMode::Leased(leases) => RedisQuotaEnforcer::new(&pool)
            .with_rate_leases(leases)
            .map_err(fail)?,
        RedisRateMode::PerRequest => RedisQuotaEnforcer::new(&pool),
    };
    let events = RedisEventBus::new(
        &pool,
        EventStreamConfig::default().with_name(super::webhooks::EVENT_STREAM),
    )
    .map_err(fail)?;
    let shared = Shared {
        events: Arc::new(events),
        redis: Some(pool.clone()),
        quota: Arc::new(quota),
        cache: Arc::new(cache.clone()),
        jobs: Arc::new(jobs),
        host_queue: Arc::new(host_queue),
        schedules: Arc::new(schedules),
        invalidations: Some(cache),
        lock: Some(RedisLock::new(&pool)),
        connection_leases: Arc::new(RedisConnectionLeases::new(&pool)),
    };
    let readiness = Readiness::default().with_probe("redis", "redis", Arc::new(PoolProbe(pool)));
    Ok((shared, readiness))
}
