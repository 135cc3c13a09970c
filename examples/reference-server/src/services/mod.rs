//! The adapters chosen at start-up and what is composed from them.
//!
//! - No `GLOBAL_DATABASE_URL`: registry, provisioner, tenant data and backups in memory.
//! - With it: the Postgres adapters, and the pool manager of tenant connections.
//! - With `REDIS_URL`: quotas, the tenant cache and the job queue in Redis (shared by every
//!   instance); without it, in memory.
//! - With both: a task closes this instance's pool of a tenant suspended or deleted through
//!   any other instance or `tenant-cli` ([`pool_sync`]).

mod auth;
mod backup_schedule;
mod cluster_budget;
mod drift_check;
pub(crate) mod host_jobs;
pub(crate) mod leader;
mod memory_mode;
mod moves;
mod periodic;
pub(crate) mod plans;
mod pool_sync;
pub(crate) mod postgres_adapters;
mod postgres_mode;
mod provision_limits;
mod redis_shared;
mod refresh_prune;
pub(crate) mod sessions;
pub(crate) mod storage;
pub(crate) mod webhooks;
pub(crate) mod worker;

use std::sync::Arc;

use tenant_manager::host_jobs::HostJobs;
use tenant_manager::lookup::TenantLookup;
use tenant_manager::manager::{ManagerConfig, PoolCloser, TenantManager};
use tenant_manager::postgres::usage::PgRoleLimits;
use tenant_manager::quota_events::QuotaExceededEvents;
use tenant_manager::redis::{RedisLock, RedisPool, RedisTenantCache};
use tenant_manager::{
    Actor, ConnectionLeases, EventBus, JobQueue, PlanBook, PlanStore, PoolStats, QuotaEnforcer,
    ScheduleStore, StorageMeter, TenantCache,
};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::companies::CompanyStore;
use crate::config::Config;
use crate::readiness::Readiness;
use crate::startup_error::StartupError;

pub(crate) use self::auth::{hasher, tokens};

/// What the server needs of the pool manager besides connections: its counts (for
/// `/api/admin/pools`), closing one tenant's pool ([`PoolCloser`]) and closing every pool at
/// shutdown.
pub(crate) trait PoolEngine: PoolCloser {
    /// Current counts.
    fn pool_stats(&self) -> PoolStats;

    /// Closes every pool; checked-out connections close when returned.
    fn close_all(&self);
}

/// Where tenant rate limits, the tenant cache and the job queue live.
#[derive(Debug, Clone)]
pub(crate) struct Shared {
    pub(crate) quota: Arc<dyn QuotaEnforcer>,
    pub(crate) cache: Arc<dyn TenantCache>,
    pub(crate) jobs: Arc<dyn JobQueue>,
    /// The queue of the host jobs (apart from the provisioning jobs).
    pub(crate) host_queue: Arc<dyn JobQueue>,
    /// The recurring schedules of host jobs.
    pub(crate) schedules: Arc<dyn ScheduleStore>,
    /// The Redis tenant cache, whose invalidations come from every instance (none in memory).
    pub(crate) invalidations: Option<RedisTenantCache>,
    /// Leases in Redis, so a maintenance pass runs on one instance at a time (none without
    /// Redis).
    pub(crate) lock: Option<RedisLock>,
    /// Where tenant events are published: the Redis event stream, or this process's bus.
    pub(crate) events: Arc<dyn EventBus>,
    /// The Redis pool, for the webhooks' consumer groups of the event stream (none in memory).
    pub(crate) redis: Option<RedisPool>,
    /// Leases of the servers' cluster connection budgets (in Redis: shared by every instance).
    pub(crate) connection_leases: Arc<dyn ConnectionLeases>,
}

/// Everything the routes and background tasks use.
#[derive(Debug, Clone)]
pub(crate) struct Services {
    pub(crate) manager: TenantManager,
    /// The same manager, its events naming the operator ([`Actor::Admin`]): for the admin API.
    pub(crate) admin: TenantManager,
    /// Where tenant events are published (the manager's and the worker's bus).
    pub(crate) events: Arc<dyn EventBus>,
    /// Publishes `quota_exceeded` when a quota refuses a tenant's request, throttled.
    pub(crate) quota_events: Option<QuotaExceededEvents>,
    /// The webhook endpoints and their delivery.
    pub(crate) webhooks: webhooks::Webhooks,
    pub(crate) lookup: TenantLookup,
    pub(crate) quota: Arc<dyn QuotaEnforcer>,
    pub(crate) jobs: Arc<dyn JobQueue>,
    pub(crate) companies: Arc<dyn CompanyStore>,
    /// Refresh tokens: in the global database in Postgres mode, in memory otherwise.
    pub(crate) refresh: Arc<dyn tenant_manager::RefreshTokenStore>,
    /// The host's job kinds (the demo kind), run by the in-process host job worker.
    pub(crate) host_jobs: HostJobs<()>,
    /// The pool manager of tenant connections (none in embedded mode).
    pub(crate) pools: Option<Arc<dyn PoolEngine>>,
    /// The plans the manager and the rate limiter apply, refreshed from `plan_store`.
    pub(crate) plans: PlanBook,
    /// Where plans are kept (the registry's `tm_plans`, or memory).
    pub(crate) plan_store: Arc<dyn PlanStore>,
    /// Measures tenants' storage for the `storage_bytes` quota.
    pub(crate) meter: Arc<dyn StorageMeter>,
    /// Postgres session limits on database-isolated tenants' roles (none in embedded mode).
    pub(crate) role_limits: Option<PgRoleLimits>,
    pub(crate) readiness: Readiness,
    /// The drift check of tenants' schemas (none in embedded mode).
    pub(crate) drift: Option<tenant_manager::postgres::DriftChecker>,
    /// The Postgres pool manager itself, for `POST /api/test/sql` (none in embedded mode).
    #[cfg(feature = "attack-route")]
    pub(crate) sql_pools: Option<tenant_manager::postgres::PgTenantPools>,
}

/// The manager's settings from the configuration.
pub(crate) fn manager_config(config: &Config) -> ManagerConfig {
    let naming =
        tenant_manager::StorageNaming::new(&config.database.storage_prefix).unwrap_or_default();
    ManagerConfig::default()
        .with_async_provisioning(config.features.async_provisioning)
        .with_region(config.region.clone())
        .with_servers(config.database.placement_servers())
        .with_shared_database(config.database.shared_database.clone())
        .with_login_failures(config.security.login_failures)
        .with_naming(naming)
}

/// Quotas, cache and queue: in Redis with `REDIS_URL` (with its readiness probe), else in
/// this process.
pub(crate) async fn shared(config: &Config) -> Result<(Shared, Readiness), StartupError> {
    match &config.redis.url {
        Some(url) => redis_shared::connect(config, url).await,
        None => Ok((memory_mode::shared()?, Readiness::default())),
    }
}

impl Services {
    /// Builds the adapters `config` asks for, and starts (tracked by `tasks`, stopped by
    /// `shutdown`) the host job worker, the provisioning worker when provisioning is asynchronous, and the closing
    /// of pools of tenants changed elsewhere when Redis and pools are both configured.
    pub(crate) async fn build(
        config: &Config,
        tasks: &TaskTracker,
        shutdown: &CancellationToken,
    ) -> Result<Self, StartupError> {
        let (shared, readiness) = shared(config).await?;
        let invalidations = shared.invalidations.clone();
        let leader = leader::Leader::new(shared.lock.clone(), config);
        let redis = shared.redis.clone();
        let quota = shared.quota.clone();
        let mut services = match &config.database.global {
            None => memory_mode::services(config, shared, readiness)?,
            Some(_) => postgres_mode::services(config, shared, readiness).await?,
        };
        let fail = |e| StartupError::backend("tenant events", e);
        services.admin = services.manager.acting_as(Actor::Admin);
        services.quota_events = Some(
            QuotaExceededEvents::new(
                services.events.clone(),
                quota,
                config.webhooks.quota_event_window,
            )
            .map_err(fail)?,
        );
        services.webhooks = webhooks::Webhooks::start(
            &config.webhooks,
            services.events.clone(),
            redis.as_ref(),
            tasks,
            shutdown,
        )
        .map_err(fail)?;
        let services = host_jobs::start(services, tasks, shutdown)?;
        let services = if config.features.async_provisioning {
            worker::start(services, tasks, shutdown)?
        } else {
            services
        };
        plans::start_refresh(
            Arc::new(config.clone()),
            services.plan_store.clone(),
            services.plans.clone(),
            tasks,
            shutdown,
        );
        if let Some(interval) = config.security.refresh_token_prune_interval {
            refresh_prune::start(services.refresh.clone(), interval, tasks, shutdown);
        }
        if let Some(interval) = config.usage.storage_interval {
            storage::start(services.clone(), interval, tasks, shutdown);
        }
        backup_schedule::start(&services, &leader, &config.maintenance, tasks, shutdown);
        drift_check::start(&services, &leader, &config.maintenance, tasks, shutdown);
        if let (Some(cache), Some(pools)) = (invalidations, &services.pools) {
            pool_sync::start(
                cache.subscribe_invalidations(),
                services.manager.clone(),
                pools.clone(),
                tasks,
                shutdown,
            );
        }
        Ok(services)
    }
}
