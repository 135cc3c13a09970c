//! Listing backups and restoring them: into an existing tenant, or as a new tenant.

use std::time::Duration;

use super::TenantManager;
use super::backup::has_data;
use super::members::{Invited, invitation_ttl};
use super::registration::Placed;
use crate::domain::{
    BackupId, Email, Plan, Role, Tenant, TenantId, TenantSlug, TenantStatus, validate_name,
};
use crate::error::{Entity, Error, Result};
use crate::traits::{BackupRecord, PlacementRequest};

/// The tenant [`TenantManager::restore_as_new`] creates.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RestoreAsNew {
    /// Display name (field `new_tenant.name`).
    pub name: String,
    /// Slug (field `new_tenant.slug`).
    pub slug: String,
    /// The owner to invite (field `new_tenant.owner_email`), and how long the invitation is
    /// valid (field `ttl`); `None` leaves the tenant without users.
    pub owner: Option<(String, Duration)>,
}

impl RestoreAsNew {
    /// A new tenant's name and slug, without an owner.
    pub fn new(name: impl Into<String>, slug: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            slug: slug.into(),
            owner: None,
        }
    }

    /// Invites `email` as the new tenant's owner, the invitation valid for `ttl`.
    #[must_use]
    pub fn with_owner(mut self, email: impl Into<String>, ttl: Duration) -> Self {
        self.owner = Some((email.into(), ttl));
        self
    }
}

/// What [`TenantManager::restore_as_new`] made.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RestoredAsNew {
    /// The new tenant, active, holding the backup's data.
    pub tenant: Tenant,
    /// The owner's invitation (recorded as the operator's) and its token, when an owner was
    /// named: whoever accepts it becomes the tenant's first user, an owner.
    pub owner_invitation: Option<Invited>,
}

impl TenantManager {
    /// One backup's record.
    ///
    /// # Errors
    /// `NotFound` (entity `Backup`); `InvalidInput` on `backup` without a backup adapter.
    pub async fn get_backup(&self, id: BackupId) -> Result<BackupRecord> {
        self.backup_adapter()?.get(id).await
    }

    /// A tenant's backups, newest first. The backups of a deleted tenant stay listed.
    ///
    /// # Errors
    /// `NotFound` for a tenant that is unknown and has no backups; `InvalidInput` on
    /// `backup` without a backup adapter; the adapter's errors.
    pub async fn list_backups(&self, tenant: TenantId) -> Result<Vec<BackupRecord>> {
        let records = self.backup_adapter()?.list(tenant).await?;
        if records.is_empty() {
            self.inner.ops.registry.get_tenant(tenant).await?;
        }
        Ok(records)
    }

    /// Replaces the data of the existing tenant `into` (active or suspended, of the backup's
    /// isolation) with the backup's.
    ///
    /// # Errors
    /// - `NotFound` (entity `Backup`) for an unknown backup.
    /// - `InvalidInput` on `into` for an unknown tenant; `Conflict` on `into` for a tenant
    ///   that is not active or suspended; the adapter's `InvalidInput` on `isolation`.
    pub async fn restore_backup(&self, id: BackupId, into: TenantId) -> Result<Tenant> {
        let backup = self.backup_adapter()?;
        backup.get(id).await?;
        let target = match self.inner.ops.registry.get_tenant(into).await {
            Err(Error::NotFound { .. }) => return Err(Error::invalid("into", "no such tenant")),
            other => other?,
        };
        if !has_data(target.status) {
            return Err(Error::conflict(
                Entity::Tenant,
                "into",
                format!(
                    "tenant {} is {}: only active and suspended tenants can be restored into",
                    target.id, target.status
                ),
            ));
        }
        backup.restore(id, &target).await?;
        tracing::info!(backup = %id, tenant = %target.id, "backup restored");
        Ok(target)
    }

    /// Restores a backup as a new tenant, in one call: registers a tenant of the backup's
    /// isolation and of its source's plan (the default plan when the source is gone),
    /// provisions it now (whatever the async provisioning setting), and restores into it.
    /// When provisioning or the restore fails, the new tenant is deleted again.
    ///
    /// Users live in the registry, not in a backup, so the new tenant starts without any. With
    /// an owner named ([`RestoreAsNew::with_owner`]), the restore ends by inviting that e-mail
    /// as owner on the operator's behalf (see [`TenantManager::invite_user_as_operator`]);
    /// whoever accepts the invitation sets a password and logs in to the restored data.
    ///
    /// # Errors
    /// - `NotFound` (entity `Backup`) for an unknown backup.
    /// - `InvalidInput` on `new_tenant.name`, `new_tenant.slug`, `new_tenant.owner_email`
    ///   or `ttl`, before anything is created; `Conflict` on
    ///   `new_tenant.slug` when it is taken; `InvalidInput` on `isolation` when this
    ///   deployment cannot provision the backup's isolation.
    /// - `Unavailable` when provisioning fails; the adapter's restore errors.
    pub async fn restore_as_new(&self, id: BackupId, new: RestoreAsNew) -> Result<RestoredAsNew> {
        let backup = self.backup_adapter()?;
        let record = backup.get(id).await?;
        let name = validate_name(new.name, "new_tenant.name")?;
        let slug = TenantSlug::parse_field(&new.slug, "new_tenant.slug")?;
        let owner = match new.owner {
            Some((email, ttl)) => Some((
                Email::parse_field(&email, "new_tenant.owner_email")?,
                invitation_ttl(ttl)?,
            )),
            None => None,
        };
        let registry = &self.inner.ops.registry;
        let source = match registry.get_tenant(record.tenant_id).await {
            Ok(source) => Some(source),
            Err(Error::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        let isolation = record
            .isolation
            .or(source.as_ref().map(|s| s.isolation))
            .ok_or_else(|| Error::invalid("isolation", "the backup does not record it"))?;
        if !self
            .inner
            .ops
            .provisioner
            .capabilities()
            .supports(isolation)
        {
            return Err(Error::invalid(
                "isolation",
                format!("{isolation} is not supported by this deployment"),
            ));
        }
        let region = source.as_ref().and_then(|s| s.region.clone());
        let plan: Plan = source.map_or_else(|| self.inner.config.default_plan.clone(), |s| s.plan);
        let request = PlacementRequest::new(slug.clone(), isolation).with_region(region.clone());
        let server = self.place_request(&request).await?;
        let placed = Placed {
            name,
            isolation,
            plan,
            server,
            region,
        };
        let new = self.placed_tenant(TenantId::new(), slug, placed)?;
        let tenant = match registry.create_tenant(new).await {
            Err(Error::Conflict {
                entity, message, ..
            }) => {
                return Err(Error::conflict(entity, "new_tenant.slug", message));
            }
            other => other?,
        };
        let tenant = self.inner.ops.begin_provisioning(tenant).await?;
        let tenant = self.provision_inline(tenant).await?;
        if tenant.status != TenantStatus::Active {
            let reason = tenant.status_reason.clone().unwrap_or_default();
            self.discard(tenant.id).await;
            return Err(Error::unavailable(
                "provisioner",
                format!("the new tenant could not be provisioned: {reason}"),
            ));
        }
        if let Err(e) = backup.restore(id, &tenant).await {
            self.discard(tenant.id).await;
            return Err(e);
        }
        let owner_invitation = match owner {
            Some((email, ttl)) => {
                match self
                    .record_invitation(&tenant, email, Role::Owner, None, ttl)
                    .await
                {
                    Ok(invited) => Some(invited),
                    Err(e) => {
                        self.discard(tenant.id).await;
                        return Err(e);
                    }
                }
            }
            None => None,
        };
        tracing::info!(backup = %id, tenant = %tenant.id, "backup restored as a new tenant");
        Ok(RestoredAsNew {
            tenant,
            owner_invitation,
        })
    }

    /// Deletes and purges a tenant made for a restore that did not go through (best effort).
    async fn discard(&self, id: TenantId) {
        let gone = match self.delete(id).await {
            Ok(t) if t.status == TenantStatus::Deleted => self.purge(id).await,
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = gone {
            tracing::warn!(tenant = %id, error = %e, "could not remove a tenant made for a restore");
        }
    }
}
