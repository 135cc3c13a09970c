//! The services of Postgres mode, assembled over [`PostgresAdapters`]: the app login, the wall's
//! start-up check and the pool manager of tenant connections over them, companies in each tenant's storage, and the
//! readiness probes of the global database and of each Postgres server of tenants.

use std::sync::Arc;

use sqlx::PgPool;
use tenant_manager::lookup::TenantLookup;
use tenant_manager::postgres::PgTenantPools;
use tenant_manager::{BoxError, PoolStats, async_trait};

use super::postgres_adapters::PostgresAdapters;
use super::{PoolEngine, Services, Shared};
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

/// `SELECT 1` on one Postgres server of tenants, as its admin login, on a connection of its own.
#[derive(Debug)]
struct ServerProbe(sqlx::postgres::PgConnectOptions);

#[async_trait]
impl Probe for ServerProbe {
    async fn check(&self) -> Result<(), BoxError> {
        use sqlx::Connection as _;
        let mut conn = sqlx::PgConnection::connect_with(&self.0).await?;
        sqlx::query("SELECT 1").execute(&mut conn).await?;
        conn.close().await?;
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
    let plans = postgres.plan_book(config).await.map_err(fail)?;
    let pools = postgres
        .pools(config, &plans, Arc::clone(&shared.connection_leases))
        .map_err(fail)?;
    let store = config
        .backup_store
        .open(None)
        .map_err(|e| StartupError::backend("backup store", e))?;
    let backup = postgres.backup(store);
    let manager = postgres
        .manager(
            config,
            &shared,
            backup,
            Some(Arc::new(pools.clone())),
            plans.clone(),
        )
        .map_err(fail)?;
    let probe = GlobalDatabaseProbe(postgres.registry.pool().clone());
    // Each server of tenants is a component of its own: `database_server:<id>`.
    let readiness =
        config
            .database
            .tenant_servers()
            .into_iter()
            .fold(readiness, |readiness, server| {
                readiness.with_probe(
                    format!("database_server:{}", server.spec.id),
                    "postgres",
                    Arc::new(ServerProbe(server.admin)),
                )
            });
    let companies: Arc<dyn crate::companies::CompanyStore> = Arc::new(
        PgCompanies::new(pools.clone()).with_reads_from_replicas(config.pool.reads_from_replicas),
    );
    let host_jobs = super::host_jobs::build(&manager, Arc::clone(&companies), &shared)?;
    Ok(Services {
        lookup: TenantLookup::new(postgres.registry.clone(), shared.cache),
        admin: manager.clone(),
        events: shared.events,
        quota_events: None,
        webhooks: super::webhooks::Webhooks::default(),
        manager,
        host_jobs,
        quota: shared.quota,
        jobs: shared.jobs,
        companies,
        refresh: Arc::new(tenant_manager::postgres::PostgresRefreshTokens::new(
            postgres.registry.pool().clone(),
        )),
        #[cfg(feature = "attack-route")]
        sql_pools: Some(pools.clone()),
        pools: Some(Arc::new(pools)),
        plans,
        plan_store: postgres.registry.clone(),
        meter: Arc::new(postgres.meter()),
        role_limits: Some(postgres.role_limits()),
        drift: Some(postgres.drift()),
        readiness: readiness.with_probe("database", "postgres", Arc::new(probe)),
    })
}
