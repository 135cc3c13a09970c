//! Restore tests: a backup restored into scratch storage, its rows per table compared with the
//! counts recorded when it was taken.

use rand::seq::SliceRandom;
use serde::Serialize;

use super::TenantManager;
use crate::domain::{BackupId, TenantId};
use crate::error::{Error, Result};
use crate::traits::{BackupRecord, TableRows};

/// A table whose restored rows differ from the rows recorded at backup time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TableMismatch {
    /// The table (`schema.table`, or a collection).
    pub table: String,
    /// Rows recorded when the backup was taken (none: the table was not there).
    pub recorded: Option<u64>,
    /// Rows found after the restore (none: the table is missing).
    pub restored: Option<u64>,
}

/// The verification of one backup.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct BackupVerification {
    /// The tenant the backup was taken of.
    pub tenant_id: TenantId,
    /// The backup.
    pub backup_id: BackupId,
    /// Whether it restored and every table held the recorded rows.
    pub passed: bool,
    /// Tables compared.
    pub tables: usize,
    /// The tables that differ.
    pub mismatched: Vec<TableMismatch>,
    /// Why it could not be compared (a checksum mismatch, a failed restore, no recorded
    /// counts).
    pub error: Option<String>,
}

/// What [`TenantManager::verify_latest_backups`] found.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Backups verified.
    pub checked: usize,
    /// Those that passed.
    pub passed: usize,
    /// Those that failed.
    pub failed: usize,
    /// Sampled tenants that have no backup yet.
    pub without_backup: Vec<TenantId>,
    /// One entry per backup verified.
    pub results: Vec<BackupVerification>,
}

/// Most tenants one verification samples.
pub const MAX_VERIFY_SAMPLE: usize = 1_000;

impl TenantManager {
    /// Verifies the newest backup of `sample` active or suspended tenants chosen at random
    /// (every one with `None`), one after the other: each is restored into scratch storage
    /// that is dropped afterwards and compared table by table with the rows recorded when it
    /// was taken. Sets the gauge `tenant_backup_verify_failed` to the failures of this run.
    ///
    /// # Errors
    /// `InvalidInput` on `sample` (1 to 1000) or on `backup` without a backup adapter; the
    /// registry's errors. A backup that fails verification is reported, not an error.
    pub async fn verify_latest_backups(&self, sample: Option<usize>) -> Result<VerifyReport> {
        if sample.is_some_and(|n| !(1..=MAX_VERIFY_SAMPLE).contains(&n)) {
            return Err(Error::invalid("sample", "must be 1 to 1000"));
        }
        let backup = self.backup_adapter()?;
        let mut tenants = self.tenants_with_data().await?;
        if let Some(n) = sample {
            tenants.shuffle(&mut rand::rng());
            tenants.truncate(n);
        }
        let mut report = VerifyReport::default();
        for tenant in tenants {
            let newest = backup.list(tenant.id).await?.into_iter().next();
            let Some(record) = newest else {
                report.without_backup.push(tenant.id);
                continue;
            };
            let checked = self.verify_record(&record).await;
            report.checked += 1;
            if checked.passed {
                report.passed += 1;
            } else {
                report.failed += 1;
            }
            report.results.push(checked);
        }
        record_run(report.checked, report.failed);
        Ok(report)
    }

    /// Verifies one backup (see [`verify_latest_backups`](Self::verify_latest_backups)); sets
    /// the gauge `tenant_backup_verify_failed` to 0 or 1.
    ///
    /// # Errors
    /// `NotFound` for an unknown backup; `InvalidInput` on `backup` without an adapter.
    pub async fn verify_backup(&self, backup: BackupId) -> Result<BackupVerification> {
        let record = self.backup_adapter()?.get(backup).await?;
        let checked = self.verify_record(&record).await;
        record_run(1, usize::from(!checked.passed));
        Ok(checked)
    }

    async fn verify_record(&self, record: &BackupRecord) -> BackupVerification {
        let mut checked = BackupVerification {
            tenant_id: record.tenant_id,
            backup_id: record.id,
            passed: false,
            tables: 0,
            mismatched: Vec::new(),
            error: None,
        };
        let Some(recorded) = &record.table_rows else {
            checked.error = Some("no row counts were recorded when the backup was taken".into());
            return checked;
        };
        let restored = async {
            let backup = self.backup_adapter()?;
            let owner = self.inner.ops.registry.get_tenant(record.tenant_id).await?;
            backup.restored_rows(record.id, &owner).await
        }
        .await;
        match restored {
            Ok(restored) => {
                checked.mismatched = compare_rows(recorded, &restored);
                checked.tables = recorded
                    .keys()
                    .chain(restored.keys())
                    .collect::<std::collections::BTreeSet<_>>()
                    .len();
                checked.passed = checked.mismatched.is_empty();
            }
            Err(e) => checked.error = Some(e.to_string()),
        }
        if !checked.passed {
            tracing::warn!(
                tenant = %record.tenant_id,
                backup = %record.id,
                mismatched = ?checked.mismatched,
                error = ?checked.error,
                "backup verification failed"
            );
        }
        checked
    }
}

/// The series of a verification run: backups checked, and the failures of this run.
fn record_run(checked: usize, failed: usize) {
    metrics::counter!("tenant_backup_verifications_total").increment(checked as u64);
    metrics::gauge!("tenant_backup_verify_failed").set(failed as f64);
    metrics::gauge!("tenant_backup_verify_last_timestamp_seconds")
        .set(time::OffsetDateTime::now_utc().unix_timestamp() as f64);
}

/// The tables whose rows differ between what was recorded and what was restored.
pub fn compare_rows(recorded: &TableRows, restored: &TableRows) -> Vec<TableMismatch> {
    let tables: std::collections::BTreeSet<&String> =
        recorded.keys().chain(restored.keys()).collect();
    tables
        .into_iter()
        .filter_map(|table| {
            let (a, b) = (recorded.get(table).copied(), restored.get(table).copied());
            (a != b).then(|| TableMismatch {
                table: table.clone(),
                recorded: a,
                restored: b,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_differing_table_is_named() {
        let recorded: TableRows = [("a".to_owned(), 2), ("b".to_owned(), 3)].into();
        let restored: TableRows = [("a".to_owned(), 2), ("c".to_owned(), 1)].into();
        let names: Vec<_> = compare_rows(&recorded, &restored)
            .into_iter()
            .map(|m| (m.table, m.recorded, m.restored))
            .collect();
        assert_eq!(
            names,
            vec![
                ("b".to_owned(), Some(3), None),
                ("c".to_owned(), None, Some(1))
            ]
        );
        assert!(compare_rows(&recorded, &recorded).is_empty());
    }
}
