//! Suspend, resume, delete, purge, and retrying a failed provisioning.

use super::TenantManager;
use crate::domain::{EventKind, Tenant, TenantId, TenantStatus};
use crate::error::{Error, Result};
use crate::lifecycle::jobs_kinds;
use crate::traits::UsageKind;

impl TenantManager {
    /// Suspends a tenant: `Active -> Suspended` with `reason`, drops cached copies, closes
    /// its pool. Suspending a suspended tenant redoes the last two steps (so a call that
    /// failed halfway can be repeated).
    ///
    /// # Errors
    /// - `InvalidInput` on `reason` (over 500 characters or control characters).
    /// - `InvalidTransition` when the tenant is neither active nor suspended; `NotFound`.
    /// - `Unavailable` when the registry, cache or pool engine cannot be reached.
    pub async fn suspend(&self, id: TenantId, reason: &str) -> Result<Tenant> {
        let reason = validate_reason(reason)?;
        let ops = &self.inner.ops;
        let tenant = ops
            .transition_as(
                id,
                TenantStatus::Suspended,
                reason,
                Some(EventKind::Suspended),
                self.actor.clone(),
            )
            .await?;
        ops.close_pool(id).await?;
        tracing::info!(tenant = %id, "tenant suspended");
        Ok(tenant)
    }

    /// Resumes a suspended tenant: `Suspended -> Active`, dropping cached copies. Its pool
    /// opens again on first use. Resuming an active tenant changes nothing.
    ///
    /// # Errors
    /// `InvalidTransition` when the tenant is not suspended or active; `NotFound`;
    /// `Unavailable`.
    pub async fn resume(&self, id: TenantId) -> Result<Tenant> {
        let tenant = self
            .inner
            .ops
            .transition_as(
                id,
                TenantStatus::Active,
                None,
                Some(EventKind::Resumed),
                self.actor.clone(),
            )
            .await?;
        tracing::info!(tenant = %id, "tenant resumed");
        Ok(tenant)
    }

    /// Soft-deletes a tenant: `-> Deleting`, closes its pool, drops its storage, `-> Deleted`.
    /// With async provisioning the last two steps are queued as a `tenant.deprovision` job
    /// and the tenant is returned `Deleting`. Deleting a `Deleting` tenant resumes the
    /// deletion; deleting a `Deleted` one returns it as it is. [`TenantManager::purge`]
    /// removes the record.
    ///
    /// # Errors
    /// `InvalidTransition` while the tenant is provisioning; `NotFound`; `Unavailable`; the
    /// provisioner's errors (the tenant then stays `Deleting`).
    pub async fn delete(&self, id: TenantId) -> Result<Tenant> {
        let ops = &self.inner.ops;
        let tenant = ops.registry.get_tenant(id).await?;
        let tenant = match tenant.status {
            TenantStatus::Deleted => return Ok(tenant),
            TenantStatus::Deleting => tenant,
            _ => ops.transition(id, TenantStatus::Deleting, None).await?,
        };
        if self.inner.config.async_provisioning {
            ops.close_pool(id).await?;
            let job = self
                .job_queue()?
                .enqueue(jobs_kinds::deprovision_job(id)?)
                .await?;
            tracing::info!(tenant = %id, job = %job, "tenant deprovisioning queued");
            return Ok(tenant);
        }
        ops.finish_deletion(&tenant, self.actor.clone()).await
    }

    /// Removes a `Deleted` tenant's record and users for good, and forgets its rate and usage
    /// counters.
    ///
    /// # Errors
    /// `InvalidTransition` when the tenant is not `Deleted`; `NotFound`; `Unavailable`.
    pub async fn purge(&self, id: TenantId) -> Result<()> {
        let ops = &self.inner.ops;
        let tenant = ops.registry.get_tenant(id).await?;
        if tenant.status != TenantStatus::Deleted {
            return Err(Error::InvalidTransition {
                tenant: id,
                from: tenant.status,
                to: TenantStatus::Deleted,
            });
        }
        self.inner.quota.reset_tenant(id).await?;
        ops.registry.purge_tenant(id).await?;
        ops.emit(EventKind::Purged, &tenant, self.actor.clone(), None)
            .await;
        ops.invalidate(id).await?;
        tracing::info!(tenant = %id, "tenant purged");
        Ok(())
    }

    /// Provisions a `Pending`, `Failed` or stuck `Provisioning` tenant again (inline, or
    /// queued with async provisioning). An active tenant is returned as it is.
    ///
    /// # Errors
    /// `InvalidTransition` for a suspended, deleting or deleted tenant; `NotFound`;
    /// `Unavailable`.
    pub async fn retry_provisioning(&self, id: TenantId) -> Result<Tenant> {
        let tenant = self.inner.ops.registry.get_tenant(id).await?;
        match tenant.status {
            TenantStatus::Active => Ok(tenant),
            TenantStatus::Pending | TenantStatus::Failed | TenantStatus::Provisioning => {
                self.start_provisioning(tenant).await
            }
            from => Err(Error::InvalidTransition {
                tenant: id,
                from,
                to: TenantStatus::Provisioning,
            }),
        }
    }

    /// A tenant's current usage of `kind`, as the quota enforcer counts it.
    ///
    /// # Errors
    /// `Unavailable` when the quota backend cannot be reached.
    pub async fn usage(&self, id: TenantId, kind: UsageKind) -> Result<u64> {
        self.inner.quota.usage(id, kind).await
    }
}

/// An empty reason records none; otherwise at most 500 printable characters.
fn validate_reason(reason: &str) -> Result<Option<String>> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Ok(None);
    }
    if reason.chars().count() > 500 || reason.chars().any(char::is_control) {
        return Err(Error::invalid(
            "reason",
            "must be at most 500 printable characters",
        ));
    }
    Ok(Some(reason.to_owned()))
}
