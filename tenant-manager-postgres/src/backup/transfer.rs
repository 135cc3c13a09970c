//! Copying a tenant's data from one placement to another (a move between servers): the
//! backup's dump and restore, through a private work directory instead of the store.

use tenant_manager_core::{BackupId, Isolation, Result, Tenant};

use super::work::WorkDir;
use super::{CopyOp, PgDumpBackup, dump, format_of};

impl PgDumpBackup {
    /// Replaces `to`'s data (the tenant at its new placement, whose storage exists) with
    /// `from`'s (the same tenant at its current placement): `pg_dump`/`pg_restore` for
    /// database and schema isolation, the tenant's rows by binary `COPY` for shared isolation.
    /// `scratch` names the scratch objects, so a copy interrupted halfway is cleaned up by the
    /// next. Idempotent. The caller holds the tenant's lock.
    ///
    /// # Errors
    /// As [`Backup::backup`](tenant_manager_core::Backup::backup) and
    /// [`Backup::restore`](tenant_manager_core::Backup::restore).
    pub(crate) async fn transfer(
        &self,
        from: &Tenant,
        to: &Tenant,
        scratch: BackupId,
    ) -> Result<()> {
        let source = self.storage.target(from)?;
        let target = self.storage.target(to)?;
        let (_, ext) = format_of(from.isolation);
        let work = WorkDir::create(&self.config.work_dir).await?;
        let path = work.file(&format!("move.{ext}"))?;
        let (source_name, _) = self.dump_to(from, &source, &path).await?;
        let job = dump::Restore {
            storage: &self.storage,
            tools: &self.config.tools,
            tenant: to,
            target: &target,
            backup: scratch,
        };
        match to.isolation {
            Isolation::Database => dump::restore_database(&job, &path).await,
            Isolation::Schema => {
                let renamed = work.file("renamed.dump")?;
                dump::restore_schema(&job, &source_name, &path, &renamed).await
            }
            Isolation::Shared => self
                .shared_copy(&target, to.id, CopyOp::Restore(&path))
                .await
                .map(|_| ()),
        }
    }
}
