//! Backing up every tenant with bounded concurrency.

use std::sync::Arc;

use futures::StreamExt;

use super::TenantManager;
use crate::domain::{EventKind, MAX_PAGE_SIZE, Tenant, TenantId, TenantQuery, TenantStatus};
use crate::error::{Entity, Error, Result};
use crate::traits::{Backup, BackupRecord};

/// Most backups [`TenantManager::backup_all`] runs at once.
const MAX_BACKUP_CONCURRENCY: usize = 64;

/// Progress of [`TenantManager::backup_all`], reported after each tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupProgress {
    /// Tenants done so far (succeeded or failed).
    pub completed: usize,
    /// Tenants to back up in this run.
    pub total: usize,
    /// The tenant just done.
    pub tenant: TenantId,
    /// Whether its backup succeeded.
    pub succeeded: bool,
}

/// What [`TenantManager::backup_all`] did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct BackupSummary {
    /// The backups taken.
    pub backups: Vec<BackupRecord>,
    /// Tenants whose backup failed, with the error; rerun to retry them.
    pub failures: Vec<(TenantId, Error)>,
}

impl TenantManager {
    /// Backs up one tenant now. Only active and suspended tenants have data to back up.
    ///
    /// # Errors
    /// - `NotFound` for an unknown (or purged) tenant.
    /// - `Conflict` on `status` when the tenant is not active or suspended (pending,
    ///   provisioning, failed, deleting, deleted), also when it left those states while its
    ///   backup ran.
    /// - `InvalidInput` on `backup` when no backup adapter is configured.
    /// - The backup adapter's errors (`Unavailable` when the database or tools cannot be had).
    pub async fn backup_tenant(&self, id: TenantId) -> Result<BackupRecord> {
        let backup = self.backup_adapter()?;
        let tenant = self.inner.ops.registry.get_tenant(id).await?;
        if !has_data(tenant.status) {
            return Err(no_data(&tenant));
        }
        match backup.backup(&tenant).await {
            Ok(record) => {
                let details = serde_json::json!({ "backup_id": record.id });
                self.inner
                    .ops
                    .emit(
                        EventKind::BackupCompleted,
                        &tenant,
                        self.actor.clone(),
                        Some(details),
                    )
                    .await;
                Ok(record)
            }
            Err(e) => {
                let details = serde_json::json!({ "reason": e.to_string() });
                self.inner
                    .ops
                    .emit(
                        EventKind::BackupFailed,
                        &tenant,
                        self.actor.clone(),
                        Some(details),
                    )
                    .await;
                // A tenant deleted while its dump ran fails in the tool; say what happened.
                let now = self.inner.ops.registry.get_tenant(id).await;
                match now {
                    Ok(now) if !has_data(now.status) => Err(no_data(&now)),
                    Err(gone @ Error::NotFound { .. }) => Err(gone),
                    _ => Err(e),
                }
            }
        }
    }

    /// Backs up every active and suspended tenant, at most `concurrency` at a time, calling
    /// `progress` after each one. One tenant's failure does not stop the others.
    ///
    /// # Errors
    /// `InvalidInput` on `concurrency` (1 to 64) or on `backup` when no backup adapter is
    /// configured; the registry's errors while listing tenants.
    pub async fn backup_all(
        &self,
        concurrency: usize,
        mut progress: impl FnMut(&BackupProgress) + Send,
    ) -> Result<BackupSummary> {
        if !(1..=MAX_BACKUP_CONCURRENCY).contains(&concurrency) {
            return Err(Error::invalid("concurrency", "must be 1 to 64"));
        }
        let backup = self.backup_adapter()?;
        let tenants = self.tenants_with_data().await?;
        let total = tenants.len();
        let mut summary = BackupSummary::default();
        let mut runs = futures::stream::iter(tenants)
            .map(|tenant| back_up(Arc::clone(&backup), tenant))
            .buffer_unordered(concurrency);
        while let Some((tenant, outcome)) = runs.next().await {
            let succeeded = outcome.is_ok();
            match outcome {
                Ok(record) => summary.backups.push(record),
                Err(e) => {
                    tracing::warn!(tenant = %tenant, error = %e, "tenant backup failed");
                    summary.failures.push((tenant, e));
                }
            }
            progress(&BackupProgress {
                completed: summary.backups.len() + summary.failures.len(),
                total,
                tenant,
                succeeded,
            });
        }
        Ok(summary)
    }

    /// The backup adapter.
    ///
    /// # Errors
    /// `InvalidInput` on `backup` when none is configured.
    pub(super) fn backup_adapter(&self) -> Result<Arc<dyn Backup>> {
        self.inner
            .backup
            .clone()
            .ok_or_else(|| Error::invalid("backup", "no backup adapter is configured"))
    }

    /// Every tenant whose storage holds data: active and suspended ones.
    pub(super) async fn tenants_with_data(&self) -> Result<Vec<Tenant>> {
        let mut tenants = Vec::new();
        let mut query = TenantQuery::default().with_limit(MAX_PAGE_SIZE);
        loop {
            let page = self.inner.ops.registry.list_tenants(&query).await?;
            tenants.extend(page.items.into_iter().filter(|t| has_data(t.status)));
            match page.next {
                Some(next) => query = query.with_after(Some(next)),
                None => return Ok(tenants),
            }
        }
    }
}

/// Active and suspended tenants hold data.
pub(super) fn has_data(status: TenantStatus) -> bool {
    matches!(status, TenantStatus::Active | TenantStatus::Suspended)
}

/// The refusal to back up a tenant in a status without data.
fn no_data(tenant: &Tenant) -> Error {
    Error::conflict(
        Entity::Tenant,
        "status",
        format!(
            "tenant {} is {}: only active and suspended tenants can be backed up",
            tenant.id, tenant.status
        ),
    )
}

async fn back_up(backup: Arc<dyn Backup>, tenant: Tenant) -> (TenantId, Result<BackupRecord>) {
    let outcome = backup.backup(&tenant).await;
    (tenant.id, outcome)
}
