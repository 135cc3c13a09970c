//! `ProvisioningHook`: synchronous steps a host adds around provisioning, with a veto.

use async_trait::async_trait;

use crate::domain::Tenant;
use crate::error::Result;

/// Steps a host runs before and after a tenant's storage is provisioned: to veto a tenant
/// (a sanctions check, a region the host cannot serve) or to add a step of its own (seed
/// data, a billing account) that must be done before the tenant becomes `Active`.
///
/// Register hooks with `TenantManagerBuilder::with_provisioning_hook` (the workers the
/// manager builds run them too) or `ProvisioningWorker::with_provisioning_hook`.
///
/// # Contract
/// - Hooks run in the order they were added, inside each provisioning run (inline at
///   registration, or in the worker), and again on every retry of that run: make them
///   idempotent.
/// - `before_provisioning` runs before the provisioner is called; `after_provisioning` after
///   the storage exists and before the tenant becomes `Active`. The tenant is `Active` only
///   once every hook has succeeded.
///
/// # Errors
/// The error a hook returns is the run's error, with the same failure semantics as the
/// provisioner's:
/// - a non-retryable error (a veto: [`Error::Forbidden`](crate::error::Error::Forbidden) or
///   [`Error::InvalidInput`](crate::error::Error::InvalidInput) with the hook's reason) marks
///   the tenant `Failed` at once, with the error's message as its status reason. A veto
///   before provisioning leaves no storage behind; an error after it leaves the storage in
///   place (deleting the tenant drops it);
/// - a retryable error ([`Error::Unavailable`](crate::error::Error::Unavailable)) is retried
///   with backoff by the worker (queued provisioning) until the queue's attempts run out,
///   then the tenant is marked `Failed`; inline provisioning does not retry and marks it
///   `Failed` (an operator retries with `TenantManager::retry_provisioning`).
#[async_trait]
pub trait ProvisioningHook: std::fmt::Debug + Send + Sync + 'static {
    /// Runs before the tenant's storage is created. An error vetoes this run.
    async fn before_provisioning(&self, tenant: &Tenant) -> Result<()>;

    /// Runs after the tenant's storage exists, before it becomes `Active`. An error fails
    /// this run.
    async fn after_provisioning(&self, tenant: &Tenant) -> Result<()>;
}
