//! A registration whose tenant never became active does not keep its e-mail: its owner can
//! register again, which resumes or replaces the failed tenant.
//!
//! # The rule
//! An e-mail is given back only when all of these hold, so nobody can take over someone
//! else's account, and a tenant that ever served (and so may hold data) is never touched:
//! - its user is the owner and the only user of its tenant;
//! - the tenant is `Pending` or `Failed`: it never became active (`Failed` is only reached
//!   from `Provisioning`, which is only reached from `Pending` or `Failed`), so its owner
//!   never logged in and it holds no data;
//! - the new registration's password verifies against the owner's stored hash.
//!
//! Anything else answers the same `Conflict` on `email` as any taken address. A retry with
//! the same name, slug (or none), isolation and plan resumes the tenant (same id, provisioned
//! again); a retry that asks for anything else replaces it: the tenant's leftover storage is
//! dropped, its record purged, and the registration made afresh. A replacement interrupted
//! halfway (the tenant left `Deleting` or `Deleted` with the replacement's reason) is finished
//! by the owner's next registration, under the same checks.

use super::TenantManager;
use super::signup::{Valid, email_taken};
use crate::domain::{Role, Secret, Tenant, TenantStatus, User};
use crate::error::{Error, Result};

/// The reason recorded on a tenant being replaced; marks a replacement to finish.
const REPLACED: &str = "replaced by a new registration of its owner";

/// What a registration for an e-mail that is already registered may do.
pub(super) enum Reclaimed {
    /// The same registration again: provision this tenant again, for this owner.
    Resume(Box<(Tenant, User)>),
    /// The failed tenant is gone: register afresh.
    Released,
}

impl TenantManager {
    /// Decides whether `existing` (the user holding the registration's e-mail) gives the
    /// e-mail back, by the rule of this module.
    ///
    /// # Errors
    /// `Conflict` on `email` when the rule does not hold; `InvalidTransition` when a racing
    /// call moved the tenant on; the registry's, hasher's and provisioner's errors.
    pub(super) async fn reclaim(
        &self,
        existing: User,
        valid: &Valid,
        password: &Secret,
    ) -> Result<Reclaimed> {
        let registry = &self.inner.ops.registry;
        if existing.role != Role::Owner {
            return Err(email_taken());
        }
        let tenant = match registry.get_tenant(existing.tenant_id).await {
            Ok(tenant) => tenant,
            Err(Error::NotFound { .. }) => return Err(email_taken()),
            Err(e) => return Err(e),
        };
        let interrupted = being_replaced(&tenant);
        if !never_active(tenant.status) && !interrupted {
            return Err(email_taken());
        }
        let verified = self
            .inner
            .hasher
            .verify(password.expose(), &existing.password_hash)
            .await?;
        if !verified {
            return Err(email_taken());
        }
        if registry.list_users(tenant.id).await?.len() != 1 {
            return Err(email_taken());
        }
        if !interrupted && same_registration(&tenant, valid) {
            tracing::info!(tenant = %tenant.id, "registration retried: provisioning again");
            return Ok(Reclaimed::Resume(Box::new((tenant, existing))));
        }
        self.discard_never_active(tenant).await?;
        Ok(Reclaimed::Released)
    }

    /// Drops a never-active tenant's storage and record: `-> Deleting`, deprovision,
    /// `-> Deleted`, purge, each step marked with [`REPLACED`] so that a later call finishes
    /// an interrupted run. A racing resume wins or loses the first transition as a whole.
    async fn discard_never_active(&self, tenant: Tenant) -> Result<()> {
        let ops = &self.inner.ops;
        let reason = || Some(REPLACED.to_owned());
        if tenant.status != TenantStatus::Deleted {
            let deleting = ops
                .transition(tenant.id, TenantStatus::Deleting, reason())
                .await?;
            ops.close_pool(tenant.id).await?;
            ops.provisioner.deprovision(&deleting).await?;
            ops.transition(tenant.id, TenantStatus::Deleted, reason())
                .await?;
        }
        self.purge(tenant.id).await?;
        tracing::info!(tenant = %tenant.id, slug = %tenant.slug, "failed registration replaced");
        Ok(())
    }
}

/// `Pending` and `Failed` tenants never served a request.
fn never_active(status: TenantStatus) -> bool {
    matches!(status, TenantStatus::Pending | TenantStatus::Failed)
}

/// A tenant whose replacement by its owner's new registration was interrupted.
fn being_replaced(tenant: &Tenant) -> bool {
    matches!(
        tenant.status,
        TenantStatus::Deleting | TenantStatus::Deleted
    ) && tenant.status_reason.as_deref() == Some(REPLACED)
}

/// Whether `valid` asks for what `tenant` was registered with.
fn same_registration(tenant: &Tenant, valid: &Valid) -> bool {
    tenant.name == valid.name
        && valid.slug.as_ref().is_none_or(|slug| *slug == tenant.slug)
        && tenant.isolation == valid.isolation
        && tenant.plan == valid.plan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tenants_that_never_served_give_their_email_back() {
        for status in [TenantStatus::Pending, TenantStatus::Failed] {
            assert!(never_active(status), "{status}");
        }
        for status in [
            TenantStatus::Provisioning,
            TenantStatus::Active,
            TenantStatus::Suspended,
            TenantStatus::Deleting,
            TenantStatus::Deleted,
        ] {
            assert!(!never_active(status), "{status}");
        }
    }
}
