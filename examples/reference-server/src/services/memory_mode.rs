//! The services of embedded mode, assembled over the in-memory adapters.

use std::sync::Arc;

use tenant_manager::lookup::TenantLookup;
use tenant_manager::manager::TenantManager;
use tenant_manager::memory::{
    InMemoryBackup, InMemoryCacheConfig, InMemoryEventBus, InMemoryJobQueue,
    InMemoryJobQueueConfig, InMemoryPlanStore, InMemoryProvisioner, InMemoryQuotaConfig,
    InMemoryQuotaEnforcer, InMemoryRegistry, InMemorySchedules, InMemoryTenantCache,
    InMemoryTenantData,
};

use super::{Services, Shared, hasher, manager_config, plans, tokens};
use crate::companies::MemoryCompanies;
use crate::config::Config;
use crate::readiness::Readiness;
use crate::startup_error::StartupError;
use tenant_manager::{PlanBook, PlanCatalog};

/// Quotas, cache and queue in this process.
pub(super) fn shared() -> Result<Shared, StartupError> {
    let fail = |e| StartupError::backend("in-memory adapters", e);
    Ok(Shared {
        quota: Arc::new(InMemoryQuotaEnforcer::new(InMemoryQuotaConfig::default()).map_err(fail)?),
        cache: Arc::new(InMemoryTenantCache::new(InMemoryCacheConfig::default()).map_err(fail)?),
        jobs: Arc::new(InMemoryJobQueue::new(InMemoryJobQueueConfig::default()).map_err(fail)?),
        host_queue: Arc::new(
            InMemoryJobQueue::new(InMemoryJobQueueConfig::default()).map_err(fail)?,
        ),
        schedules: Arc::new(InMemorySchedules::new()),
        invalidations: None,
        lock: None,
        events: Arc::new(InMemoryEventBus::default()),
        redis: None,
        connection_leases: Arc::new(tenant_manager::memory::InMemoryConnectionLeases::new()),
    })
}

/// Registry, provisioner, tenant data and backups in memory (backup artifacts on disk, in
/// `BACKUP_DIR`).
pub(super) fn services(
    config: &Config,
    shared: Shared,
    readiness: Readiness,
) -> Result<Services, StartupError> {
    let fail = |e| StartupError::backend("in-memory adapters", e);
    let data = Arc::new(InMemoryTenantData::new());
    let registry = Arc::new(InMemoryRegistry::new());
    let provisioner = Arc::new(InMemoryProvisioner::new(data.clone()));
    let store = config
        .backup_store
        .open(None)
        .map_err(|e| StartupError::backend("backup store", e))?;
    let backup = Arc::new(InMemoryBackup::new(data.clone(), store));
    let plans = PlanBook::new(PlanCatalog::new(plans::default_policy(config)));
    let manager = TenantManager::builder()
        .with_registry(registry.clone())
        .with_provisioner(provisioner)
        .with_quota(shared.quota.clone())
        .with_cache(shared.cache.clone())
        .with_jobs(shared.jobs.clone())
        .with_backup(backup)
        .with_hasher(hasher(config).map_err(fail)?)
        .with_tokens(tokens(config).map_err(fail)?)
        .with_plan_book(plans.clone())
        .with_events(shared.events.clone())
        .with_config(manager_config(config))
        .build()
        .map_err(fail)?;
    let companies: Arc<dyn crate::companies::CompanyStore> =
        Arc::new(MemoryCompanies::new(data.clone()));
    let host_jobs = super::host_jobs::build(&manager, Arc::clone(&companies), &shared)?;
    Ok(Services {
        lookup: TenantLookup::new(registry, shared.cache),
        admin: manager.clone(),
        events: shared.events,
        quota_events: None,
        webhooks: super::webhooks::Webhooks::default(),
        manager,
        host_jobs,
        quota: shared.quota,
        jobs: shared.jobs,
        companies,
        refresh: Arc::new(tenant_manager::memory::InMemoryRefreshTokens::new()),
        pools: None,
        plans,
        plan_store: Arc::new(InMemoryPlanStore::default()),
        meter: data,
        role_limits: None,
        readiness: readiness.with_in_process("database"),
        drift: None,
        #[cfg(feature = "attack-route")]
        sql_pools: None,
    })
}
