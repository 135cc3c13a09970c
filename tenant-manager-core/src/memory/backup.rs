//! `InMemoryBackup`: JSON snapshots of [`InMemoryTenantData`] kept in any [`BackupStore`].

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dashmap::DashMap;
use time::OffsetDateTime;

use super::InMemoryTenantData;
use super::tenant_data::snapshot_rows;
use crate::backup_store::io_error;
use crate::domain::{BackupId, Tenant, TenantId};
use crate::error::{Entity, Error, Result};
use crate::traits::{Backup, BackupRecord, BackupStore, TableRows};

/// Format name recorded in each [`BackupRecord`].
const FORMAT: &str = "json";

/// Backups of the tenants of an [`InMemoryTenantData`] (embedded mode).
///
/// `backup` takes a snapshot of the tenant's data, consistent at one instant (it holds the
/// tenant's read lock while serializing), and puts it into the store under
/// `<tenant id>/<backup id>.json` through a scratch file. `restore` fetches the artifact (the
/// store verifies its checksum), checks it against the catalogue's checksum, and replaces the
/// target's data in one step; the target may be another provisioned tenant (a clone). Any
/// isolation can take a JSON snapshot.
///
/// The catalogue of backups is kept in memory and is lost on restart, as is the data it
/// backs up; the artifacts stay in the store. Its size grows with the number of backups:
/// prune regularly.
#[derive(Debug)]
pub struct InMemoryBackup {
    data: Arc<InMemoryTenantData>,
    store: Arc<dyn BackupStore>,
    catalogue: DashMap<TenantId, BTreeMap<BackupId, BackupRecord>>,
    owners: DashMap<BackupId, TenantId>,
    scratch_dir: PathBuf,
}

impl InMemoryBackup {
    /// Backups of `data` kept in `store`, using the system's temporary directory as scratch.
    pub fn new(data: Arc<InMemoryTenantData>, store: Arc<dyn BackupStore>) -> Self {
        Self {
            data,
            store,
            catalogue: DashMap::new(),
            owners: DashMap::new(),
            scratch_dir: std::env::temp_dir(),
        }
    }

    /// Sets the directory where artifacts are staged on their way to and from the store.
    #[must_use]
    pub fn with_scratch_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.scratch_dir = dir.into();
        self
    }

    /// The store artifacts are kept in.
    pub fn store(&self) -> &Arc<dyn BackupStore> {
        &self.store
    }

    /// The record of a backup.
    fn record(&self, id: BackupId) -> Result<BackupRecord> {
        let owner = self
            .owners
            .get(&id)
            .map(|owner| *owner)
            .ok_or_else(|| Error::not_found(Entity::Backup, id))?;
        self.catalogue
            .get(&owner)
            .and_then(|records| records.get(&id).cloned())
            .ok_or_else(|| Error::not_found(Entity::Backup, id))
    }

    /// Deletes a backup's artifact, then its record.
    async fn forget(&self, record: &BackupRecord) -> Result<()> {
        self.store.delete(&record.key).await?;
        if let Some(mut records) = self.catalogue.get_mut(&record.tenant_id) {
            records.remove(&record.id);
        }
        self.catalogue
            .remove_if(&record.tenant_id, |_, records| records.is_empty());
        self.owners.remove(&record.id);
        Ok(())
    }

    /// The artifact of `record`, checked against the checksum recorded when it was taken.
    async fn artifact(&self, record: &BackupRecord) -> Result<Vec<u8>> {
        self.with_scratch(|scratch| async move {
            let object = self.store.get_file(&record.key, &scratch).await?;
            if object.sha256 != record.sha256 {
                return Err(Error::invalid(
                    "backup",
                    format!(
                        "artifact {} does not match the checksum recorded when backup {} was taken",
                        record.key, record.id
                    ),
                ));
            }
            tokio::fs::read(&scratch).await.map_err(io_error)
        })
        .await
    }

    /// Runs `f` with a fresh scratch path, and removes the file afterwards whatever happened.
    async fn with_scratch<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: FnOnce(PathBuf) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let path = self.scratch_dir.join(format!(
            "tenant-manager-backup-{}.tmp",
            uuid::Uuid::new_v4().simple()
        ));
        let result = f(path.clone()).await;
        remove_scratch(&path).await;
        result
    }
}

async fn remove_scratch(path: &Path) {
    if let Err(e) = tokio::fs::remove_file(path).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove backup scratch file");
    }
}

#[async_trait]
impl Backup for InMemoryBackup {
    async fn backup(&self, tenant: &Tenant) -> Result<BackupRecord> {
        let snapshot = self.data.snapshot(tenant.id)?;
        let rows = snapshot_rows(&snapshot)?;
        let id = BackupId::new();
        let key = format!("{}/{}.{FORMAT}", tenant.id, id);
        let object = self
            .with_scratch(|scratch| async move {
                tokio::fs::write(&scratch, &snapshot)
                    .await
                    .map_err(io_error)?;
                self.store.put_file(&key, &scratch).await
            })
            .await?;
        let record = BackupRecord::new(id, tenant.id, object, FORMAT, OffsetDateTime::now_utc())
            .with_isolation(tenant.isolation)
            .with_table_rows(rows);
        self.catalogue
            .entry(tenant.id)
            .or_default()
            .insert(id, record.clone());
        self.owners.insert(id, tenant.id);
        tracing::info!(tenant = %tenant.id, backup = %id, bytes = record.size_bytes, "backup taken");
        Ok(record)
    }

    async fn get(&self, backup: BackupId) -> Result<BackupRecord> {
        self.record(backup)
    }

    async fn delete(&self, backup: BackupId) -> Result<()> {
        let record = self.record(backup)?;
        self.forget(&record).await
    }

    async fn list(&self, tenant: TenantId) -> Result<Vec<BackupRecord>> {
        Ok(self
            .catalogue
            .get(&tenant)
            .map(|records| records.values().rev().cloned().collect())
            .unwrap_or_default())
    }

    async fn restore(&self, backup: BackupId, target: &Tenant) -> Result<()> {
        let record = self.record(backup)?;
        if !self.data.contains(target.id) {
            return Err(Error::not_found(
                Entity::Tenant,
                format!("{} (no data space)", target.id),
            ));
        }
        let snapshot = self.artifact(&record).await?;
        self.data.restore(target.id, &snapshot)?;
        tracing::info!(backup = %backup, target = %target.id, "backup restored");
        Ok(())
    }

    async fn restored_rows(&self, backup: BackupId, _owner: &Tenant) -> Result<TableRows> {
        let record = self.record(backup)?;
        // A snapshot restores as a whole map: counting the artifact's records is what a
        // restore would hold.
        let snapshot = self.artifact(&record).await?;
        snapshot_rows(&snapshot)
    }

    async fn prune(&self, tenant: Option<TenantId>, retention: Duration) -> Result<u64> {
        let now = OffsetDateTime::now_utc();
        // A retention longer than time can represent keeps everything.
        let Some(cutoff) = time::Duration::try_from(retention)
            .ok()
            .and_then(|retention| now.checked_sub(retention))
        else {
            return Ok(0);
        };
        let expired: Vec<BackupRecord> = self
            .catalogue
            .iter()
            .filter(|entry| tenant.is_none_or(|t| t == *entry.key()))
            .flat_map(|entry| {
                entry
                    .value()
                    .values()
                    .filter(|r| r.created_at < cutoff)
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut pruned = 0;
        for record in expired {
            self.forget(&record).await?;
            pruned += 1;
        }
        if pruned > 0 {
            tracing::info!(pruned, "backups pruned");
        }
        Ok(pruned)
    }
}
