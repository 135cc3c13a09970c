//! The scale run's fleet migration: one new migration for every tenant (a column and an
//! index on `companies`, in each tenant's database or schema and in each shared database),
//! applied by the fleet migrator as `tenant-cli migrate tenants` applies a release's, timed,
//! and checked with the registry: afterwards no tenant may be behind.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use sqlx::SqlSafeStr as _;
use sqlx::migrate::{Migration, MigrationType};
use tenant_manager::TenantStatus;
use tenant_manager::postgres::FleetOptions;
use tenant_manager::postgres::migrate::FleetProgress;

use crate::cli::exit::{CliError, Exit};
use crate::config::Config;
use crate::services::postgres_adapters::PostgresAdapters;

/// Version of the run's migration (after the CRM's own).
const VERSION: i64 = 20_991_231_000_001;

/// What the fleet migration did.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct FleetResult {
    /// Tenants behind before the run (every active tenant).
    pub(crate) behind_before: usize,
    /// Tenants migrated.
    pub(crate) succeeded: usize,
    /// Tenants that failed.
    pub(crate) failed: usize,
    /// Tenants still behind afterwards, read from the registry (0: it reached every tenant).
    pub(crate) behind_after: usize,
    /// Tenants migrated at once.
    pub(crate) concurrency: usize,
    /// Wall time of `migrate_all`, seconds.
    pub(crate) seconds: f64,
    /// Tenants per second.
    pub(crate) rate_per_second: f64,
    /// 1-minute load average at the end.
    pub(crate) load_average: f64,
}

fn migration(description: &'static str, sql: &'static str) -> Migration {
    Migration::new(
        VERSION,
        description.into(),
        MigrationType::Simple,
        sql.into_sql_str(),
        false,
    )
}

/// Migrates every active tenant of the deployment of `config` to the run's new version,
/// `concurrency` at a time.
///
/// # Errors
/// [`CliError`] when Postgres cannot be reached or the registry cannot be read.
pub(crate) async fn fleet(config: &Config, concurrency: usize) -> Result<FleetResult, CliError> {
    let adapters = PostgresAdapters::connect(config).await?;
    let migrator = adapters.migrator_with(
        migration(
            "scale run: company industry",
            "ALTER TABLE companies ADD COLUMN industry text; \
             CREATE INDEX companies_industry_idx ON companies (industry)",
        ),
        migration(
            "scale run: company industry (shared)",
            "ALTER TABLE companies ADD COLUMN industry text; \
             CREATE INDEX companies_industry_idx ON companies (tenant_id, industry)",
        ),
    )?;
    let statuses = [TenantStatus::Active];
    let behind_before = migrator.behind(&statuses).await?.len();
    let options = FleetOptions::default()
        .with_concurrency(concurrency)
        .with_statuses(statuses.to_vec());
    let bar =
        super::progress::progress(u64::try_from(behind_before).unwrap_or(0), "fleet migration");
    let shown = bar.clone();
    let started = Instant::now();
    let report = migrator
        .migrate_all(
            &options,
            Some(Arc::new(move |p: &FleetProgress| {
                shown.set_position(u64::try_from(p.done).unwrap_or(0));
            })),
        )
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    for failure in report.failures().take(5) {
        eprintln!("migration failed: {failure:?}");
    }
    let behind_after = migrator.behind(&statuses).await?.len();
    if report.halted {
        return Err(CliError::new(
            Exit::Partial,
            format!(
                "the fleet migration halted: {} failed, {} not started",
                report.failed(),
                report.not_started.len()
            ),
        ));
    }
    Ok(FleetResult {
        behind_before,
        succeeded: report.succeeded(),
        failed: report.failed(),
        behind_after,
        concurrency,
        seconds,
        rate_per_second: report.succeeded() as f64 / seconds.max(1e-9),
        load_average: super::server::load_average(),
    })
}
