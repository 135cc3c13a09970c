//! Life-cycle steps shared by the manager and the provisioning worker: status transitions
//! that also drop cached copies, provisioning, deprovisioning, marking failures.

use std::sync::Arc;
use std::time::Instant;

use super::pools::PoolCloser;
use crate::domain::{Tenant, TenantId, TenantStatus};
use crate::error::{Error, Result};
use crate::traits::{Provisioner, TenantCache, TenantRegistry};

/// Counter of provisioning outcomes, labelled `result`.
pub(crate) const PROVISIONING_TOTAL: &str = "tenant_provisioning_total";
/// Counter of deprovisioning outcomes, labelled `result`.
pub(crate) const DEPROVISIONING_TOTAL: &str = "tenant_deprovisioning_total";
/// Histogram of provisioning durations.
const PROVISIONING_SECONDS: &str = "tenant_provisioning_duration_seconds";

/// Longest failure reason recorded on a tenant.
const MAX_REASON_CHARS: usize = 500;

/// The adapters a life-cycle step touches.
#[derive(Debug, Clone)]
pub(crate) struct TenantOps {
    pub(crate) registry: Arc<dyn TenantRegistry>,
    pub(crate) provisioner: Arc<dyn Provisioner>,
    pub(crate) cache: Option<Arc<dyn TenantCache>>,
    pub(crate) pools: Option<Arc<dyn PoolCloser>>,
}

impl TenantOps {
    /// Moves a tenant to `to` and drops cached copies. A tenant already in `to` (a racing
    /// caller, or a retry) is returned as it is.
    pub(crate) async fn transition(
        &self,
        id: TenantId,
        to: TenantStatus,
        reason: Option<String>,
    ) -> Result<Tenant> {
        let tenant = match self.registry.transition(id, to, reason).await {
            Ok(tenant) => tenant,
            Err(Error::InvalidTransition { from, .. }) if from == to => {
                self.registry.get_tenant(id).await?
            }
            Err(e) => return Err(e),
        };
        self.invalidate(id).await?;
        Ok(tenant)
    }

    /// Drops cached copies of a tenant, if a cache is configured.
    pub(crate) async fn invalidate(&self, id: TenantId) -> Result<()> {
        match &self.cache {
            Some(cache) => cache.invalidate(id).await,
            None => Ok(()),
        }
    }

    /// Closes the tenant's pool, if a pool closer is configured.
    pub(crate) async fn close_pool(&self, id: TenantId) -> Result<()> {
        match &self.pools {
            Some(pools) => pools.close_pool(id).await,
            None => Ok(()),
        }
    }

    /// `Pending` or `Failed` -> `Provisioning`; a tenant already `Provisioning` stays.
    pub(crate) async fn begin_provisioning(&self, tenant: Tenant) -> Result<Tenant> {
        if tenant.status == TenantStatus::Provisioning {
            return Ok(tenant);
        }
        self.transition(tenant.id, TenantStatus::Provisioning, None)
            .await
    }

    /// Runs the provisioner and marks the tenant `Active`. On error the tenant stays
    /// `Provisioning`; the caller retries or marks it failed.
    pub(crate) async fn provision(&self, tenant: &Tenant) -> Result<Tenant> {
        let started = Instant::now();
        let report = self.provisioner.provision(tenant).await?;
        metrics::histogram!(PROVISIONING_SECONDS).record(started.elapsed().as_secs_f64());
        tracing::info!(
            tenant = %tenant.id,
            slug = %tenant.slug,
            steps = report.steps_run.len(),
            used_template = report.used_template,
            "tenant provisioned"
        );
        self.transition(tenant.id, TenantStatus::Active, None).await
    }

    /// Marks a tenant `Failed`, recording why.
    pub(crate) async fn mark_failed(&self, id: TenantId, error: &Error) -> Result<Tenant> {
        tracing::warn!(tenant = %id, error = %error, "tenant provisioning failed");
        self.transition(id, TenantStatus::Failed, Some(failure_reason(error)))
            .await
    }

    /// For a `Deleting` tenant: closes its pool, drops its storage, marks it `Deleted`.
    pub(crate) async fn finish_deletion(&self, tenant: &Tenant) -> Result<Tenant> {
        self.close_pool(tenant.id).await?;
        self.provisioner.deprovision(tenant).await?;
        let deleted = self
            .transition(tenant.id, TenantStatus::Deleted, None)
            .await?;
        tracing::info!(tenant = %tenant.id, slug = %tenant.slug, "tenant deprovisioned");
        Ok(deleted)
    }
}

/// The reason recorded on a failed tenant: the error's message (never a secret, by the
/// error type's contract), cut to a bounded length.
pub(crate) fn failure_reason(error: &Error) -> String {
    let message = error.to_string();
    match message.char_indices().nth(MAX_REASON_CHARS) {
        Some((cut, _)) => message[..cut].to_owned(),
        None => message,
    }
}

/// Counts one outcome of a life-cycle job.
pub(crate) fn record(metric: &'static str, result: &'static str) {
    metrics::counter!(metric, "result" => result).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_reasons_are_bounded() {
        let long = Error::internal("x".repeat(2_000));
        assert_eq!(failure_reason(&long).chars().count(), MAX_REASON_CHARS);
        let short = Error::internal("disk full");
        assert_eq!(failure_reason(&short), "internal error: disk full");
    }
}
