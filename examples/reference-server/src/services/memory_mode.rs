//! The services of embedded mode, assembled over the in-memory adapters.

use std::sync::Arc;

use tenant_manager::lookup::TenantLookup;
use tenant_manager::manager::TenantManager;
use tenant_manager::memory::{
    InMemoryBackup, InMemoryCacheConfig, InMemoryJobQueue, InMemoryJobQueueConfig,
    InMemoryProvisioner, InMemoryQuotaConfig, InMemoryQuotaEnforcer, InMemoryRegistry,
    InMemoryTenantCache, InMemoryTenantData,
};

use super::{Services, Shared, hasher, manager_config, plan_catalog, tokens};
use crate::companies::MemoryCompanies;
use crate::config::Config;
use crate::readiness::Readiness;
use crate::startup_error::StartupError;

/// Quotas, cache and queue in this process.
pub(super) fn shared() -> Result<Shared, StartupError> {
    let fail = |e| StartupError::backend("in-memory adapters", e);
    Ok(Shared {
        quota: Arc::new(InMemoryQuotaEnforcer::new(InMemoryQuotaConfig::default()).map_err(fail)?),
        cache: Arc::new(InMemoryTenantCache::new(InMemoryCacheConfig::default()).map_err(fail)?),
        jobs: Arc::new(InMemoryJobQueue::new(InMemoryJobQueueConfig::default()).map_err(fail)?),
        invalidations: None,
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
    let plans = plan_catalog(config);
    let manager = TenantManager::builder()
        .with_registry(registry.clone())
        .with_provisioner(provisioner)
        .with_quota(shared.quota.clone())
        .with_cache(shared.cache.clone())
        .with_jobs(shared.jobs.clone())
        .with_backup(backup)
        .with_hasher(hasher(config).map_err(fail)?)
        .with_tokens(tokens(config).map_err(fail)?)
        .with_plans(plans.clone())
        .with_config(manager_config(config))
        .build()
        .map_err(fail)?;
    Ok(Services {
        lookup: TenantLookup::new(registry, shared.cache),
        manager,
        quota: shared.quota,
        jobs: shared.jobs,
        companies: Arc::new(MemoryCompanies::new(data)),
        pools: None,
        plans,
        readiness: readiness.with_in_process("database"),
        #[cfg(feature = "attack-route")]
        sql_pools: None,
    })
}
