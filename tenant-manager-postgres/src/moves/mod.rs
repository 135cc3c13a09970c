//! `PostgresMover`: the storage side of moving tenants between the servers of the
//! [`ServerMap`](crate::ServerMap), and the record of each move in the global database.
//!
//! | isolation | destination made by | copy |
//! |---|---|---|
//! | `Database` | provisioning's `reserved` and `storage_created` steps (role, database, `CONNECT` closed) | `pg_dump -Fc` of the database, restored into a fresh database swapped in |
//! | `Schema` | the same steps (role, schema, the wall, the app login's grants) | `pg_dump -Fc --schema`, restored beside the schema and swapped in |
//! | `Shared` | the same steps plus `migrated` (shared tables under forced row-level security) | the tenant's rows by binary `COPY`, replacing its rows there |
//!
//! Each copy replaces what an earlier attempt left, so a move interrupted anywhere is resumed
//! by copying again. While it copies, the source is fenced in Postgres (see `moves::fence`). The
//! check reads both ends through the tenant's own scope and compares
//! per-table row counts and an MD5 over the rows in primary-key order.

mod fence;
mod record;
mod verify;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use tenant_manager_core::{
    BackupId, MoveCheck, MoveId, MoveRecord, MoveState, MoveStep, Placement, Result, TableCheck,
    Tenant, TenantId, TenantMover,
};
use time::OffsetDateTime;

use crate::backup::PgDumpBackup;
use crate::pg::TenantLock;
use crate::provision::PostgresProvisioner;
use crate::storage::TenantStorage;

/// Called after each recorded step of a move (metrics, tracing, fault injection in tests).
///
/// # Contract
/// Called once a step is recorded, so a crash inside it resumes at the next step.
///
/// # Errors
/// An error stops the move there, as a crash would; the next run resumes.
#[async_trait]
pub trait MoveHook: fmt::Debug + Send + Sync + 'static {
    /// Observes one recorded step of one tenant's move.
    async fn recorded(&self, tenant: TenantId, step: MoveStep) -> Result<()>;
}

/// [`TenantMover`] for Postgres: the destination storage is made by the provisioner's own
/// steps, the data copied by the backup's dump and restore.
#[derive(Clone)]
pub struct PostgresMover {
    storage: TenantStorage,
    provisioner: PostgresProvisioner,
    backup: PgDumpBackup,
    hook: Option<Arc<dyn MoveHook>>,
}

impl fmt::Debug for PostgresMover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresMover")
            .field("storage", &self.storage)
            .field("hook", &self.hook)
            .finish_non_exhaustive()
    }
}

impl PostgresMover {
    /// A mover making destinations with `provisioner` and copying with `backup` (its store is
    /// not used: copies go through a private work directory).
    pub fn new(provisioner: PostgresProvisioner, backup: PgDumpBackup) -> Self {
        Self {
            storage: provisioner.storage().clone(),
            provisioner,
            backup,
            hook: None,
        }
    }

    /// Observes every recorded step.
    #[must_use]
    pub fn with_hook(mut self, hook: Arc<dyn MoveHook>) -> Self {
        self.hook = Some(hook);
        self
    }
}

impl PostgresMover {
    /// `Conflict` on `state` unless the tenant's latest move is running to `to` (checked under
    /// the tenant's lock, so a cancel and a step of the same move never interleave).
    async fn still_running(&self, tenant: TenantId, to: Option<&Placement>) -> Result<()> {
        match record::latest(&self.storage.global, tenant).await? {
            Some(m) if m.state == MoveState::Running && to.is_none_or(|to| m.to == *to) => Ok(()),
            _ => Err(record::cancelled()),
        }
    }
}

/// `tenant` as it is at `placement`.
fn placed(tenant: &Tenant, placement: &Placement) -> Tenant {
    let mut at = tenant.clone();
    at.placement = placement.clone();
    at
}

#[async_trait]
impl TenantMover for PostgresMover {
    async fn begin(&self, tenant: &Tenant, to: &Placement) -> Result<MoveRecord> {
        self.storage.target(&placed(tenant, to))?;
        let record = MoveRecord::new(
            tenant.id,
            tenant.placement.clone(),
            to.clone(),
            OffsetDateTime::now_utc(),
        );
        record::insert(&self.storage.global, &record).await
    }

    async fn latest(&self, tenant: TenantId) -> Result<Option<MoveRecord>> {
        record::latest(&self.storage.global, tenant).await
    }

    async fn record(
        &self,
        id: MoveId,
        step: MoveStep,
        drop_after: Option<OffsetDateTime>,
    ) -> Result<MoveRecord> {
        let record = record::record(&self.storage.global, id, step, drop_after).await?;
        if let Some(hook) = &self.hook {
            hook.recorded(record.tenant_id, step).await?;
        }
        Ok(record)
    }

    async fn record_failure(&self, id: MoveId, step: MoveStep, error: &str) -> Result<()> {
        record::failure(&self.storage.global, id, step, error).await
    }

    async fn copy(&self, tenant: &Tenant, to: &Placement) -> Result<()> {
        let destination = placed(tenant, to);
        let lock = TenantLock::acquire(&self.storage.global, tenant.id).await?;
        let copied = async {
            self.still_running(tenant.id, Some(to)).await?;
            self.provisioner.prepare_destination(&destination).await?;
            let scratch = BackupId::from_uuid(*tenant.id.as_uuid());
            self.backup.transfer(tenant, &destination, scratch).await?;
            self.provisioner.secure_destination(&destination).await
        }
        .await;
        let _ = lock.release().await;
        copied
    }

    async fn verify(&self, tenant: &Tenant, to: &Placement) -> Result<MoveCheck> {
        let source = verify::sums(&self.storage, tenant).await?;
        let destination = verify::sums(&self.storage, &placed(tenant, to)).await?;
        let names: BTreeSet<&String> = source.keys().chain(destination.keys()).collect();
        let missing = || (0, String::new());
        Ok(MoveCheck::new(
            names
                .into_iter()
                .map(|name| {
                    TableCheck::new(
                        name.clone(),
                        source.get(name).cloned().unwrap_or_else(missing),
                        destination.get(name).cloned().unwrap_or_else(missing),
                    )
                })
                .collect(),
        ))
    }

    async fn drop_storage(&self, tenant: &Tenant, at: &Placement) -> Result<()> {
        let old = placed(tenant, at);
        let lock = TenantLock::acquire(&self.storage.global, tenant.id).await?;
        let dropped = self.provisioner.drop_at(&old).await;
        let _ = lock.release().await;
        dropped
    }

    async fn pending_drops(&self, tenant: TenantId) -> Result<Vec<MoveRecord>> {
        record::pending(&self.storage.global, tenant).await
    }

    async fn fence(&self, id: MoveId, tenant: &Tenant) -> Result<()> {
        let lock = TenantLock::acquire(&self.storage.global, tenant.id).await?;
        let fenced = async {
            self.still_running(tenant.id, None).await?;
            fence::apply(&self.storage, id, tenant).await
        }
        .await;
        let _ = lock.release().await;
        fenced
    }

    async fn lift_fence(&self, id: MoveId, tenant: &Tenant) -> Result<()> {
        let lock = TenantLock::acquire(&self.storage.global, tenant.id).await?;
        let lifted = fence::lift(&self.storage, id, tenant).await;
        let _ = lock.release().await;
        lifted
    }

    async fn cancel(&self, id: MoveId) -> Result<MoveRecord> {
        record::cancel(&self.storage.global, id).await
    }
}
