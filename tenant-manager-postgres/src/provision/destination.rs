//! The storage of a tenant at the destination of a move, made by the same steps as
//! provisioning (names claimed, role, database or schema, grants, the wall, row-level
//! security), without recording them: the tenant's provisioning is long done.

use tenant_manager_core::{Isolation, ProvisionReport, ProvisionStep, Result, Tenant};

use super::{PostgresProvisioner, shared};

impl PostgresProvisioner {
    /// Makes `tenant`'s storage at its placement (the destination of a move) as provisioning
    /// does, up to `migrated` for shared tenants (the shared tables must exist to take its
    /// rows) and up to `storage_created` for the others (the copy brings their tables).
    /// Nothing is seeded: the copy brings the data. Idempotent.
    ///
    /// # Errors
    /// As provisioning's steps.
    pub(crate) async fn prepare_destination(&self, tenant: &Tenant) -> Result<()> {
        let target = self.storage.target(tenant)?;
        let mut report = ProvisionReport::default();
        let mut steps = vec![ProvisionStep::Reserved, ProvisionStep::StorageCreated];
        if tenant.isolation == Isolation::Shared {
            steps.push(ProvisionStep::Migrated);
        }
        for step in steps {
            self.run_step(step, tenant, &target, &mut report).await?;
        }
        Ok(())
    }

    /// After the copy: the grants provisioning gives on the tenant's tables, again, for the
    /// tables the copy brought (schema isolation: the app login's direct grants; shared: the
    /// app login's grants on the shared tables). Idempotent.
    ///
    /// # Errors
    /// As provisioning's `storage_created` step.
    pub(crate) async fn secure_destination(&self, tenant: &Tenant) -> Result<()> {
        let target = self.storage.target(tenant)?;
        match tenant.isolation {
            Isolation::Database => Ok(()),
            Isolation::Schema => super::schema::create(&self.storage, tenant, &target).await,
            Isolation::Shared => shared::secure_migrated(&self.storage, &target).await,
        }
    }

    /// Drops `tenant`'s storage at its placement (the source of a finished move), keeping its
    /// provisioning record: the tenant lives on elsewhere.
    ///
    /// # Errors
    /// As [`Provisioner::deprovision`](tenant_manager_core::Provisioner::deprovision).
    pub(crate) async fn drop_at(&self, tenant: &Tenant) -> Result<()> {
        let target = self.storage.target(tenant)?;
        match tenant.isolation {
            Isolation::Database => super::database::drop(&self.storage, tenant, &target).await,
            Isolation::Schema => super::schema::drop(&self.storage, tenant, &target).await,
            Isolation::Shared => shared::drop(&self.storage, tenant, &target).await,
        }
    }
}
