//! What a drift check is told ([`DriftOptions`]) and what it reports ([`DriftReport`]).

use serde::Serialize;
use tenant_manager_core::{Error, Isolation, Result, TenantId, TenantStatus};

use super::diff::Difference;
use super::snapshot::ObjectKind;

/// Most storages checked at once (each holds one admin connection).
pub const MAX_DRIFT_CONCURRENCY: usize = 32;

/// How a drift check runs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DriftOptions {
    /// Storages (tenant databases, tenant schemas, shared databases) read at once. Default 4.
    pub concurrency: usize,
    /// Only tenants of this isolation (`None`: all). A filtered check does not update the
    /// drift gauges, which describe the whole fleet.
    pub isolation: Option<Isolation>,
    /// Tenants in these statuses are checked. Default `Active` and `Suspended`.
    pub statuses: Vec<TenantStatus>,
}

impl Default for DriftOptions {
    fn default() -> Self {
        Self {
            concurrency: 4,
            isolation: None,
            statuses: vec![TenantStatus::Active, TenantStatus::Suspended],
        }
    }
}

impl DriftOptions {
    /// Sets the concurrency.
    #[must_use]
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// Checks only tenants of `isolation` (`None`: all).
    #[must_use]
    pub fn with_isolation(mut self, isolation: Option<Isolation>) -> Self {
        self.isolation = isolation;
        self
    }

    /// Sets the statuses of the tenants to check.
    #[must_use]
    pub fn with_statuses(mut self, statuses: Vec<TenantStatus>) -> Self {
        self.statuses = statuses;
        self
    }

    pub(super) fn validate(&self) -> Result<()> {
        if self.concurrency == 0 || self.concurrency > MAX_DRIFT_CONCURRENCY {
            return Err(Error::invalid("concurrency", "must be 1 to 32"));
        }
        if self.statuses.is_empty() {
            return Err(Error::invalid("statuses", "must name at least one status"));
        }
        Ok(())
    }
}

/// A tenant whose storage was checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DriftTenant {
    /// Its id.
    pub id: TenantId,
    /// Its slug.
    pub slug: String,
}

/// Where a checked schema lives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[non_exhaustive]
pub struct StorageRef {
    /// Server id.
    pub server: String,
    /// Database.
    pub database: String,
    /// Schema (`public` for a database tenant, the shared schema for shared tenants).
    pub schema: String,
}

/// A storage that differs from the schema its migration version makes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DriftedStorage {
    /// Isolation of its tenants.
    pub isolation: Isolation,
    /// Where it is.
    pub storage: StorageRef,
    /// Its tenants: one for a database or schema tenant, every tenant of a shared database.
    pub tenants: Vec<DriftTenant>,
    /// The migration version recorded in the registry (for a shared database, the newest of
    /// its tenants'), whose schema it was compared with.
    pub version: i64,
    /// What differs, by kind, table and name.
    pub differences: Vec<Difference>,
}

/// A storage that could not be checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DriftFailure {
    /// Where it is.
    pub storage: StorageRef,
    /// Its tenants.
    pub tenants: Vec<DriftTenant>,
    /// Why it could not be checked.
    pub error: String,
}

/// What a drift check found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DriftReport {
    /// Storages compared (tenant databases, tenant schemas, shared databases).
    pub storages_checked: usize,
    /// Tenants whose storage was compared.
    pub tenants_checked: usize,
    /// Storages that differ, in server, database, schema order.
    pub drifted: Vec<DriftedStorage>,
    /// Storages that could not be checked.
    pub failed: Vec<DriftFailure>,
}

impl DriftReport {
    /// Whether no storage differs and every one was checked.
    pub fn is_clean(&self) -> bool {
        self.drifted.is_empty() && self.failed.is_empty()
    }

    /// Tenants whose storage differs.
    pub fn drifted_tenants(&self) -> usize {
        self.drifted.iter().map(|d| d.tenants.len()).sum()
    }

    /// Differences of one kind, across every drifted storage.
    pub fn differences_of(&self, kind: ObjectKind) -> usize {
        self.drifted
            .iter()
            .flat_map(|d| &d.differences)
            .filter(|d| d.kind == kind)
            .count()
    }

    /// Sets the drift gauges: `tenant_manager_schema_drift_tenants`,
    /// `tenant_manager_schema_drift_objects{kind}` and
    /// `tenant_manager_schema_drift_check_failures`.
    pub(super) fn record_metrics(&self) {
        metrics::gauge!("tenant_manager_schema_drift_tenants").set(self.drifted_tenants() as f64);
        for kind in ObjectKind::ALL {
            metrics::gauge!("tenant_manager_schema_drift_objects", "kind" => kind.as_str())
                .set(self.differences_of(kind) as f64);
        }
        metrics::gauge!("tenant_manager_schema_drift_check_failures").set(self.failed.len() as f64);
    }
}
