//! `Provisioner`: creates and drops a tenant's isolated storage.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::{Isolation, Tenant};
use crate::error::Result;

/// The recorded steps of provisioning, in order. A rerun resumes at the first one not done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProvisionStep {
    /// Names (role, database, schema) reserved.
    Reserved,
    /// Database, schema or rows' home created, with its role and grants.
    StorageCreated,
    /// Tenant migrations applied.
    Migrated,
    /// Seed data written.
    Seeded,
    /// Ready to serve.
    Active,
}

impl ProvisionStep {
    /// All steps in order.
    pub const ALL: [ProvisionStep; 5] = [
        ProvisionStep::Reserved,
        ProvisionStep::StorageCreated,
        ProvisionStep::Migrated,
        ProvisionStep::Seeded,
        ProvisionStep::Active,
    ];

    /// Stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            ProvisionStep::Reserved => "reserved",
            ProvisionStep::StorageCreated => "storage_created",
            ProvisionStep::Migrated => "migrated",
            ProvisionStep::Seeded => "seeded",
            ProvisionStep::Active => "active",
        }
    }
}

/// What one call to [`Provisioner::provision`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProvisionReport {
    /// Steps run by this call (empty when everything was already done).
    pub steps_run: Vec<ProvisionStep>,
    /// Whether the fast path (a template database) was used.
    pub used_template: bool,
}

impl ProvisionReport {
    /// A report of the given steps.
    pub fn new(steps_run: Vec<ProvisionStep>, used_template: bool) -> Self {
        Self {
            steps_run,
            used_template,
        }
    }
}

/// Which isolation modes a provisioner supports, so conformance suites test only those.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProvisionerCapabilities {
    /// Database per tenant.
    pub database: bool,
    /// Schema per tenant.
    pub schema: bool,
    /// Shared tables under row-level security.
    pub shared: bool,
}

impl ProvisionerCapabilities {
    /// Every mode.
    pub const ALL: Self = Self {
        database: true,
        schema: true,
        shared: true,
    };

    /// Whether `isolation` is supported.
    pub fn supports(&self, isolation: Isolation) -> bool {
        match isolation {
            Isolation::Database => self.database,
            Isolation::Schema => self.schema,
            Isolation::Shared => self.shared,
        }
    }
}

/// Creates and drops a tenant's storage according to its isolation and placement.
///
/// # Contract
/// - `provision` is idempotent and resumable: a second call, or a call after a crash halfway,
///   ends in the same state, running only the steps not yet done.
/// - Two concurrent `provision` calls for one tenant do not both run a step (a per-tenant lock).
/// - `deprovision` drops storage and credentials and is idempotent (dropping nothing is `Ok`).
/// - It never changes the tenant's status in the registry; the caller does.
///
/// # Errors
/// - `InvalidInput` (field `isolation`) for an isolation mode the provisioner does not support.
/// - `Unavailable` when the backend cannot be reached (retryable).
/// - `Internal` when a step fails for another reason; what was done stays resumable.
#[async_trait]
pub trait Provisioner: std::fmt::Debug + Send + Sync + 'static {
    /// Creates the tenant's storage and runs its migrations.
    async fn provision(&self, tenant: &Tenant) -> Result<ProvisionReport>;

    /// Drops the tenant's storage and credentials.
    async fn deprovision(&self, tenant: &Tenant) -> Result<()>;

    /// Whether every step of provisioning is done for this tenant.
    async fn is_provisioned(&self, tenant: &Tenant) -> Result<bool>;

    /// Which isolation modes are supported.
    fn capabilities(&self) -> ProvisionerCapabilities;
}
