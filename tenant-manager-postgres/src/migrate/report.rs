//! What a fleet migration is told (`FleetOptions`) and what it reports.

use std::sync::Arc;

use tenant_manager_core::{Error, Result, Tenant, TenantId, TenantStatus};

/// Most tenants migrated at once.
pub const MAX_CONCURRENCY: usize = 256;

/// How a fleet migration runs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FleetOptions {
    /// Tenants migrated at once; each holds one connection to its database. Default 4.
    pub concurrency: usize,
    /// Stop starting tenants once this many have failed (`None`: continue on error).
    pub max_failures: Option<usize>,
    /// Migrate this percentage of the tenants first (at least one); if any of them fails, stop
    /// there. `None`: no canary wave.
    pub canary_percent: Option<u8>,
    /// Tenants in these statuses are migrated. Default `Active` and `Suspended` (tenants still
    /// provisioning are migrated by their provisioning run).
    pub statuses: Vec<TenantStatus>,
}

impl Default for FleetOptions {
    fn default() -> Self {
        Self {
            concurrency: 4,
            max_failures: None,
            canary_percent: None,
            statuses: vec![TenantStatus::Active, TenantStatus::Suspended],
        }
    }
}

impl FleetOptions {
    /// Sets the concurrency.
    #[must_use]
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// Halts after `n` failures (`None` continues on error).
    #[must_use]
    pub fn with_max_failures(mut self, n: Option<usize>) -> Self {
        self.max_failures = n;
        self
    }

    /// Migrates `percent` of the tenants first as canaries.
    #[must_use]
    pub fn with_canary_percent(mut self, percent: Option<u8>) -> Self {
        self.canary_percent = percent;
        self
    }

    /// Sets the statuses of the tenants to migrate.
    #[must_use]
    pub fn with_statuses(mut self, statuses: Vec<TenantStatus>) -> Self {
        self.statuses = statuses;
        self
    }

    pub(super) fn validate(&self) -> Result<()> {
        if self.concurrency == 0 || self.concurrency > MAX_CONCURRENCY {
            return Err(Error::invalid("concurrency", "must be 1 to 256"));
        }
        if self.max_failures == Some(0) {
            return Err(Error::invalid("max_failures", "must be at least 1"));
        }
        if let Some(p) = self.canary_percent
            && !(1..=100).contains(&p)
        {
            return Err(Error::invalid("canary_percent", "must be 1 to 100"));
        }
        if self.statuses.is_empty() {
            return Err(Error::invalid("statuses", "must name at least one status"));
        }
        Ok(())
    }
}

/// A tenant whose recorded migration version is behind its set's latest.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BehindTenant {
    /// The tenant.
    pub tenant: Tenant,
    /// Version it is recorded at (0 when never migrated).
    pub version: i64,
    /// Latest version of its migration set.
    pub latest: i64,
    /// Error of its last failed migration, if any.
    pub last_error: Option<String>,
}

/// The result of migrating one tenant.
#[derive(Debug)]
#[non_exhaustive]
pub struct TenantMigration {
    /// The tenant.
    pub tenant: TenantId,
    /// Its slug.
    pub slug: String,
    /// Version before.
    pub from_version: i64,
    /// Version after. On failure, a set applied in one transaction rolls back whole (unchanged);
    /// a set with migrations marked `-- no-transaction` runs migration by migration and stops
    /// at the last one that succeeded.
    pub to_version: i64,
    /// Why it failed, if it did.
    pub error: Option<Error>,
}

impl TenantMigration {
    /// Whether the tenant is now at its set's latest version.
    pub fn is_ok(&self) -> bool {
        self.error.is_none()
    }
}

/// Progress of a fleet migration, reported after each tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FleetProgress {
    /// Tenant just finished.
    pub tenant: TenantId,
    /// Whether it succeeded.
    pub ok: bool,
    /// Tenants finished so far (this wave and earlier ones).
    pub done: usize,
    /// Failures so far.
    pub failed: usize,
    /// Tenants that were behind when the run started.
    pub total: usize,
}

/// A progress callback; called from the migrating tasks, so keep it short.
pub type ProgressFn = Arc<dyn Fn(&FleetProgress) + Send + Sync>;

/// What a fleet migration did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct FleetReport {
    /// One result per tenant started, in completion order.
    pub results: Vec<TenantMigration>,
    /// Tenants not started because the run halted (canary failure or failure budget spent).
    pub not_started: Vec<TenantId>,
    /// Whether the run halted before starting every tenant that was behind.
    pub halted: bool,
}

impl FleetReport {
    /// Tenants migrated successfully.
    pub fn succeeded(&self) -> usize {
        self.results.iter().filter(|r| r.is_ok()).count()
    }

    /// Tenants that failed.
    pub fn failed(&self) -> usize {
        self.results.len() - self.succeeded()
    }

    /// The failed results.
    pub fn failures(&self) -> impl Iterator<Item = &TenantMigration> {
        self.results.iter().filter(|r| !r.is_ok())
    }
}
