//! Scheduled backups: which tenants their plan's [`BackupSchedule`] makes due, and one
//! scheduled run (a backup, then retention).

use time::OffsetDateTime;

use super::TenantManager;
use super::prune::PruneOutcome;
use crate::domain::{BackupSchedule, Tenant};
use crate::error::Result;
use crate::lifecycle::retention::RetentionPolicy;
use crate::traits::BackupRecord;

/// A tenant whose plan's schedule calls for a backup now.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DueBackup {
    /// The tenant (active or suspended).
    pub tenant: Tenant,
    /// Its plan's schedule.
    pub schedule: BackupSchedule,
    /// When its newest backup was taken (none: never backed up).
    pub last: Option<OffsetDateTime>,
}

impl TenantManager {
    /// The active and suspended tenants whose plan has a backup schedule and whose newest
    /// backup is older than the schedule's interval at `now`, or who have none.
    ///
    /// # Errors
    /// `InvalidInput` on `backup` without a backup adapter; the registry's and the adapter's
    /// errors.
    pub async fn due_backups(&self, now: OffsetDateTime) -> Result<Vec<DueBackup>> {
        let backup = self.backup_adapter()?;
        let plans = self.inner.plans.current();
        let mut due = Vec::new();
        for tenant in self.tenants_with_data().await? {
            let Some(schedule) = plans.policy(&tenant.plan).backup else {
                continue;
            };
            let last = backup
                .list(tenant.id)
                .await?
                .first()
                .map(|record| record.created_at);
            let interval =
                time::Duration::try_from(schedule.interval()).unwrap_or(time::Duration::MAX);
            let is_due = last.is_none_or(|last| now - last >= interval);
            if is_due {
                due.push(DueBackup {
                    tenant,
                    schedule,
                    last,
                });
            }
        }
        Ok(due)
    }

    /// One scheduled backup: backs the tenant up, then prunes its backups to the schedule's
    /// retention (only after the backup succeeded).
    ///
    /// # Errors
    /// As [`backup_tenant`](Self::backup_tenant) and [`prune_backups`](Self::prune_backups);
    /// `InvalidInput` on `backup.keep_daily` for a schedule that keeps nothing.
    pub async fn run_scheduled_backup(
        &self,
        due: &DueBackup,
    ) -> Result<(BackupRecord, PruneOutcome)> {
        let policy = RetentionPolicy::new(due.schedule.keep_daily, due.schedule.keep_weekly)?;
        let record = self.backup_tenant(due.tenant.id).await?;
        let pruned = self.prune_backups(due.tenant.id, policy, false).await?;
        Ok((record, pruned))
    }
}
