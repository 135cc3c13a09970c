//! `backup_all`: every tenant's backup, with bounded concurrency and progress.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use sqlx::AssertSqlSafe;
use tenant_manager_core::{
    Backup, BackupRecord, Entity, Error, Result, Tenant, TenantId, TenantStatus,
};

use super::PgDumpBackup;
use crate::pg::SqlxResultExt;
use crate::registry::{TenantRow, tenant_columns};

/// Which tenants `backup_all` covers and how many at once.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupAllOptions {
    /// Backups running at once (each holds a connection and a `pg_dump`). Default 2.
    pub concurrency: usize,
    /// Tenants in these statuses are backed up. Default `Active` and `Suspended`.
    pub statuses: Vec<TenantStatus>,
}

impl Default for BackupAllOptions {
    fn default() -> Self {
        Self {
            concurrency: 2,
            statuses: vec![TenantStatus::Active, TenantStatus::Suspended],
        }
    }
}

impl BackupAllOptions {
    /// Sets the concurrency.
    #[must_use]
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// Sets the statuses.
    #[must_use]
    pub fn with_statuses(mut self, statuses: Vec<TenantStatus>) -> Self {
        self.statuses = statuses;
        self
    }
}

/// Progress of `backup_all`, reported after each tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupProgress {
    /// Tenant just finished.
    pub tenant: TenantId,
    /// Whether its backup succeeded.
    pub ok: bool,
    /// Tenants finished so far.
    pub done: usize,
    /// Tenants in the run.
    pub total: usize,
}

/// A progress callback; called from the backup tasks, so keep it short.
pub type BackupProgressFn = Arc<dyn Fn(&BackupProgress) + Send + Sync>;

/// What `backup_all` did: one result per tenant, in completion order.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct BackupAllReport {
    /// Each tenant's backup or error.
    pub results: Vec<(TenantId, Result<BackupRecord>)>,
}

impl BackupAllReport {
    /// Backups taken.
    pub fn succeeded(&self) -> usize {
        self.results.iter().filter(|(_, r)| r.is_ok()).count()
    }

    /// Tenants whose backup failed.
    pub fn failed(&self) -> usize {
        self.results.len() - self.succeeded()
    }
}

impl PgDumpBackup {
    /// Backs up every tenant in the given statuses, `concurrency` at a time. A tenant's
    /// failure is in the report; the others go on.
    ///
    /// # Errors
    /// `InvalidInput` for a concurrency of 0 or over 64; `Unavailable` when the global
    /// database cannot be listed.
    pub async fn backup_all(
        &self,
        options: &BackupAllOptions,
        progress: Option<BackupProgressFn>,
    ) -> Result<BackupAllReport> {
        if options.concurrency == 0 || options.concurrency > 64 {
            return Err(Error::invalid("concurrency", "must be 1 to 64"));
        }
        let tenants = self.tenants_in(&options.statuses).await?;
        let total = tenants.len();
        let done = AtomicUsize::new(0);
        let results = futures::stream::iter(tenants)
            .map(|tenant| {
                let done = &done;
                let progress = progress.as_ref();
                async move {
                    let result = self.backup(&tenant).await;
                    let finished = done.fetch_add(1, Ordering::SeqCst) + 1;
                    if let Some(progress) = progress {
                        progress(&BackupProgress {
                            tenant: tenant.id,
                            ok: result.is_ok(),
                            done: finished,
                            total,
                        });
                    }
                    (tenant.id, result)
                }
            })
            .buffer_unordered(options.concurrency)
            .collect()
            .await;
        Ok(BackupAllReport { results })
    }

    async fn tenants_in(&self, statuses: &[TenantStatus]) -> Result<Vec<Tenant>> {
        let statuses: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
        let sql = format!(
            "SELECT {} FROM tm_tenants t WHERE t.status = ANY($1) ORDER BY t.id",
            tenant_columns("t")
        );
        sqlx::query_as::<_, TenantRow>(AssertSqlSafe(sql))
            .bind(statuses)
            .fetch_all(&self.storage.global)
            .await
            .map_db(Entity::Tenant)?
            .into_iter()
            .map(Tenant::try_from)
            .collect()
    }
}
