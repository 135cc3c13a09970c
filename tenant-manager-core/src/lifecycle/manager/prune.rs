//! Retention applied to a tenant's backups: [`TenantManager::prune_backups`], with a dry run.

use serde::Serialize;
use time::OffsetDateTime;

use super::TenantManager;
use crate::domain::TenantId;
use crate::error::Result;
use crate::lifecycle::retention::RetentionPolicy;
use crate::traits::BackupRecord;

/// What [`TenantManager::prune_backups`] kept and deleted (or would delete, in a dry run).
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct PruneOutcome {
    /// Whether nothing was deleted (the backups in `deleted` would have been).
    pub dry_run: bool,
    /// The backups the policy keeps, newest first.
    pub kept: Vec<BackupRecord>,
    /// The backups the policy does not keep, newest first: deleted, unless `dry_run`.
    pub deleted: Vec<BackupRecord>,
}

impl TenantManager {
    /// Applies a retention policy to a tenant's backups now: every backup the policy does not
    /// keep is deleted (artifact, then record), unless `dry_run`. The CLI's `backups prune`,
    /// the admin route and the backup scheduler all prune through here.
    ///
    /// # Errors
    /// `InvalidInput` on `backup` without a backup adapter; the adapter's errors (backups
    /// deleted before one failed stay deleted; a rerun finishes the work).
    pub async fn prune_backups(
        &self,
        tenant: TenantId,
        policy: RetentionPolicy,
        dry_run: bool,
    ) -> Result<PruneOutcome> {
        let backup = self.backup_adapter()?;
        let records = backup.list(tenant).await?;
        let taken: Vec<_> = records.iter().map(|r| r.created_at).collect();
        let keep = policy.keep(OffsetDateTime::now_utc(), &taken);
        let mut outcome = PruneOutcome {
            dry_run,
            ..PruneOutcome::default()
        };
        for (record, keep) in records.into_iter().zip(keep) {
            if keep {
                outcome.kept.push(record);
            } else {
                if !dry_run {
                    backup.delete(record.id).await?;
                }
                outcome.deleted.push(record);
            }
        }
        if !dry_run && !outcome.deleted.is_empty() {
            metrics::counter!("tenant_backups_pruned_total")
                .increment(outcome.deleted.len() as u64);
            tracing::info!(
                tenant = %tenant,
                pruned = outcome.deleted.len(),
                "backups pruned by retention"
            );
        }
        Ok(outcome)
    }
}
