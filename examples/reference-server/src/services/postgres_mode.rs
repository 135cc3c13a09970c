//! The services of Postgres mode, assembled over [`PostgresAdapters`]: the app login, the wall's
//! start-up check and the pool manager of tenant connections over them, companies in each tenant's storage, and the
//! readiness probe of the global database.

use std::sync::Arc;

use sqlx::PgPool;
use tenant_manager::lookup::TenantLookup;
use tenant_manager::postgres::PgTenantPools;
use tenant_manager::{BoxError, PoolStats, async_trait};

use super::postgres_adapters::PostgresAdapters;
use super::{PoolEngine, Services, Shared, plan_catalog};
use crate::companies::PgCompanies;
use crate::config::Config;
use crate::readiness::{Probe, Readiness};
use crate::startup_error::StartupError;

/// `SELECT 1` on the global database through the registry's pool.
#[derive(Debug)]
struct GlobalDatabaseProbe(PgPool);

#[async_trait]
impl Probe for GlobalDatabaseProbe {
    async fn check(&self) -> Result<(), BoxError> {
        sqlx::query("SELECT 1").execute(&self.0).await?;
        Ok(())
    }
}

impl PoolEngine for PgTenantPools {
    fn pool_stats(&self) -> PoolStats {
        self.stats()
    }

    fn close_all(&self) {
        PgTenantPools::close_all(self);
    }
}

/// Connects Postgres (applying pending global migrations), builds the pool manager and
/// composes the services over it and the shared quota, cache and queue.
pub(super) async fn services(
    config: &Config,
    shared: Shared,
    readiness: Readiness,
) -> Result<Services, StartupError> {
    let fail = |e| StartupError::backend("postgres", e);
    let postgres = PostgresAdapters::connect(config).await.map_err(fail)?;
    // Before the pools: they log in as the app login, and prove each checkout to the wall.
    postgres.ensure_app_login().await.map_err(fail)?;
    let problems = postgres.wall_problems().await.map_err(fail)?;
    if !problems.is_empty() {
        return Err(StartupError::Wall { problems });
    }
    let pools = postgres.pools(config).map_err(fail)?;
    let store = config
        .backup_store
        .open(None)
        .map_err(|e| StartupError::backend("backup store", e))?;
    let backup = postgres.backup(store);
    let manager = postgres
        .manager(config, &shared, backup, Some(Arc::new(pools.clone())))
        .map_err(fail)?;
    let probe = GlobalDatabaseProbe(postgres.registry.pool().clone());
    Ok(Services {
        lookup: TenantLookup::new(postgres.registry.clone(), shared.cache),
        manager,
        quota: shared.quota,
        jobs: shared.jobs,
        companies: Arc::new(PgCompanies::new(pools.clone())),
        #[cfg(feature = "attack-route")]
        sql_pools: Some(pools.clone()),
        pools: Some(Arc::new(pools)),
        plans: plan_catalog(config),
        readiness: readiness.with_probe("database", "postgres", Arc::new(probe)),
    })
}
