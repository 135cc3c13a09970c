//! `PgDumpBackup`: per-tenant backups into a [`BackupStore`], catalogued in the global database.
//!
//! | isolation | artifact | restore |
//! |---|---|---|
//! | `Database` | `pg_dump -Fc` of the tenant database | into a fresh database owned by the target role, swapped in |
//! | `Schema` | `pg_dump -Fc --schema` of the tenant schema | renamed to a staging name in a scratch database, restored under it beside the target schema, swapped in by one transaction |
//! | `Shared` | the tenant's rows of every shared table, binary `COPY` (`tm_copy_v1`) | the target's rows replaced, `tenant_id` rewritten |
//!
//! Restoring into another tenant of the same isolation clones it.
//!
//! Nothing here runs the tenant's data or code as the admin: `pg_dump`, `pg_restore` and the
//! shared-row `COPY` log in as a short-lived unprivileged login made for the operation
//! (`backup::login`). Artifacts pass through a private work directory (`0700`, files `0600`,
//! removed afterwards); a restore compares the artifact with the SHA-256 and size recorded in
//! `tm_backups` when it was taken, whatever the store's own checks say.

mod catalog;
mod copy;
mod dump;
mod login;
mod rows;
mod tools;
mod transfer;
mod work;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tenant_manager_core::{
    Backup, BackupId, BackupRecord, BackupStore, Error, Isolation, Result, TableRows, Tenant,
    TenantId,
};
use time::OffsetDateTime;

pub use tools::{PgTools, ToolError};

use crate::migrate::tenant::refresh_version;
use crate::pg::{self, TenantLock};
use crate::storage::{Target, TenantStorage};
use login::{OperationLogin, Reach};
use work::WorkDir;

/// Default retention of [`PgDumpBackup::prune_expired`]: 30 days.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Settings of [`PgDumpBackup`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupConfig {
    /// Local directory in which each operation makes a private directory (`0700`, random
    /// name) for artifacts in transit. Default: the system temporary directory.
    pub work_dir: PathBuf,
    /// How long backups are kept by [`PgDumpBackup::prune_expired`]. Default 30 days.
    pub retention: Duration,
    /// Where `pg_dump` and `pg_restore` are. Default: on `PATH`.
    pub tools: PgTools,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            work_dir: std::env::temp_dir(),
            retention: DEFAULT_RETENTION,
            tools: PgTools::from_path(),
        }
    }
}

impl BackupConfig {
    /// Sets the work directory.
    #[must_use]
    pub fn with_work_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.work_dir = dir.into();
        self
    }

    /// Sets the retention.
    #[must_use]
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Sets where the client tools are.
    #[must_use]
    pub fn with_tools(mut self, tools: PgTools) -> Self {
        self.tools = tools;
        self
    }
}

/// [`Backup`] with `pg_dump`/`pg_restore` (database and schema isolation) and binary `COPY`
/// (shared isolation).
#[derive(Clone)]
pub struct PgDumpBackup {
    storage: TenantStorage,
    store: Arc<dyn BackupStore>,
    config: BackupConfig,
}

impl fmt::Debug for PgDumpBackup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgDumpBackup")
            .field("store", &self.store)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The current time at the database's precision (microseconds), so a record returned equals
/// the record listed later.
fn now_micros() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
        .unwrap_or(now)
}

/// What [`PgDumpBackup::shared_copy`] does.
enum CopyOp<'a> {
    Dump(&'a Path),
    Restore(&'a Path),
}

fn format_of(isolation: Isolation) -> (&'static str, &'static str) {
    match isolation {
        Isolation::Database | Isolation::Schema => (dump::FORMAT, "dump"),
        Isolation::Shared => (copy::FORMAT, "copy"),
    }
}

impl PgDumpBackup {
    /// Backups of the tenants of `storage`, kept in `store`.
    pub fn new(storage: TenantStorage, store: Arc<dyn BackupStore>, config: BackupConfig) -> Self {
        Self {
            storage,
            store,
            config,
        }
    }

    /// The store artifacts go to.
    pub fn store(&self) -> &Arc<dyn BackupStore> {
        &self.store
    }

    /// Deletes backups older than the configured retention (30 days by default).
    ///
    /// # Errors
    /// As [`Backup::prune`].
    pub async fn prune_expired(&self, tenant: Option<TenantId>) -> Result<u64> {
        self.prune(tenant, self.config.retention).await
    }

    /// Checks that `pg_dump` and `pg_restore` can serve `server`: present, and not older than
    /// its major version.
    ///
    /// # Errors
    /// `Unavailable` (backend `pg_dump` or `pg_restore`) with a [`ToolError`] saying what to
    /// install.
    pub async fn check_tools(&self, server: &tenant_manager_core::ServerId) -> Result<()> {
        let mut conn = self.storage.connect_maintenance(server).await?;
        let checked = dump::check_tools(&self.config.tools, &mut conn).await;
        pg::close(conn).await;
        checked
    }

    /// Fetches a backup's artifact to `path` and checks it against the catalogue.
    async fn fetch_checked(&self, record: &BackupRecord, path: &Path) -> Result<()> {
        self.store.get_file(&record.key, path).await?;
        // The store checks the artifact against what it keeps beside it; an artifact replaced
        // together with its checksum passes that. The catalogue's record was written when the
        // backup was taken, by this code.
        let (sha256, size) = work::sha256_of(path).await?;
        if sha256 != record.sha256 || size != record.size_bytes {
            return Err(Error::invalid(
                "backup",
                "the artifact does not match the checksum recorded when it was taken",
            ));
        }
        Ok(())
    }

    /// Deletes a backup's artifact, then its catalogue row.
    async fn forget(&self, record: &BackupRecord) -> Result<()> {
        self.store.delete(&record.key).await?;
        catalog::delete(&self.storage.global, record.id).await
    }

    /// Writes the tenant's data to `path`, logged in as a login made for this backup; returns
    /// the source's name and the rows of each table in the snapshot dumped.
    async fn dump_to(
        &self,
        tenant: &Tenant,
        target: &Target,
        path: &Path,
    ) -> Result<(String, TableRows)> {
        match tenant.isolation {
            Isolation::Database | Isolation::Schema => {
                let mut conn = self.storage.connect_maintenance(&target.server).await?;
                let checked = dump::check_tools(&self.config.tools, &mut conn).await;
                pg::close(conn).await;
                checked?;
                let schema = match tenant.isolation {
                    Isolation::Schema => target.schema.as_ref(),
                    _ => None,
                };
                let role = target.role()?;
                let login =
                    OperationLogin::create(&self.storage, &target.server, Reach::MemberOf(role))
                        .await?;
                let dumped =
                    rows::counted_dump(&self.config.tools, &login, &target.database, schema, path)
                        .await;
                login.drop(&self.storage).await;
                let rows = dumped?;
                Ok((schema.unwrap_or(&target.database).as_str().to_owned(), rows))
            }
            Isolation::Shared => {
                let rows = self
                    .shared_copy(target, tenant.id, CopyOp::Dump(path))
                    .await?
                    .unwrap_or_default();
                Ok((target.database.as_str().to_owned(), rows))
            }
        }
    }

    /// Dumps or restores a shared tenant's rows logged in as a login made for it, with
    /// `SELECT, INSERT, DELETE` on the shared tables of `target`'s database and nothing else,
    /// so their forced row-level security applies (scoped to `tenant`).
    async fn shared_copy(
        &self,
        target: &Target,
        tenant: TenantId,
        op: CopyOp<'_>,
    ) -> Result<Option<TableRows>> {
        let schema = &self.storage.settings.shared_schema;
        let keys = self.storage.wall()?.map(|w| w.keys);
        let mut admin_conn = self
            .storage
            .connect(&target.server, &target.database)
            .await?;
        let result = async {
            login::sweep(&self.storage, &mut admin_conn).await;
            let tables = copy::table_names(&mut admin_conn, schema).await?;
            let login = OperationLogin::create(
                &self.storage,
                &target.server,
                Reach::Tables {
                    conn: &mut admin_conn,
                    database: &target.database,
                    schema,
                    tables: &tables,
                },
            )
            .await?;
            let done = match login.connect(&target.database).await {
                Ok(mut conn) => {
                    let done = match op {
                        CopyOp::Dump(path) => copy::dump(&mut conn, schema, tenant, keys, path)
                            .await
                            .map(Some),
                        CopyOp::Restore(path) => {
                            copy::restore(&mut conn, schema, tenant, keys, path)
                                .await
                                .map(|()| None)
                        }
                    };
                    pg::close(conn).await;
                    done
                }
                Err(e) => Err(e),
            };
            login.drop_with(&self.storage, &mut admin_conn).await;
            done
        }
        .await;
        pg::close(admin_conn).await;
        result
    }
}

#[async_trait]
impl Backup for PgDumpBackup {
    async fn backup(&self, tenant: &Tenant) -> Result<BackupRecord> {
        let target = self.storage.target(tenant)?;
        let started = Instant::now();
        let id = BackupId::new();
        let (format, ext) = format_of(tenant.isolation);
        let work = WorkDir::create(&self.config.work_dir).await?;
        let path = work.file(&format!("backup.{ext}"))?;
        let (source_name, rows) = self.dump_to(tenant, &target, &path).await?;
        let key = format!("{}/{id}.{ext}", tenant.id);
        let object = self.store.put_file(&key, &path).await?;
        let entry = catalog::Entry {
            record: BackupRecord::new(id, tenant.id, object, format, now_micros())
                .with_isolation(tenant.isolation)
                .with_table_rows(rows),
            isolation: tenant.isolation,
            source_name,
        };
        if let Err(e) = catalog::insert(&self.storage.global, &entry, tenant.slug.as_str()).await {
            let _ = self.store.delete(&key).await;
            return Err(e);
        }
        metrics::counter!("tenant_backups_total", "isolation" => tenant.isolation.as_str())
            .increment(1);
        metrics::histogram!("tenant_backup_seconds", "isolation" => tenant.isolation.as_str())
            .record(started.elapsed().as_secs_f64());
        Ok(entry.record)
    }

    async fn delete(&self, backup: BackupId) -> Result<()> {
        let entry = catalog::get(&self.storage.global, backup).await?;
        self.forget(&entry.record).await
    }

    async fn get(&self, backup: BackupId) -> Result<BackupRecord> {
        Ok(catalog::get(&self.storage.global, backup).await?.record)
    }

    async fn list(&self, tenant: TenantId) -> Result<Vec<BackupRecord>> {
        catalog::of_tenant(&self.storage.global, tenant).await
    }

    async fn restore(&self, backup: BackupId, target_tenant: &Tenant) -> Result<()> {
        let entry = catalog::get(&self.storage.global, backup).await?;
        if entry.isolation != target_tenant.isolation {
            return Err(Error::invalid(
                "isolation",
                format!(
                    "a backup of a {} tenant cannot be restored into a {} tenant",
                    entry.isolation, target_tenant.isolation
                ),
            ));
        }
        let target = self.storage.target(target_tenant)?;
        let (_, ext) = format_of(entry.isolation);
        let work = WorkDir::create(&self.config.work_dir).await?;
        let path = work.file(&format!("restore.{ext}"))?;
        self.fetch_checked(&entry.record, &path).await?;
        let lock = TenantLock::acquire(&self.storage.global, target_tenant.id).await?;
        let job = dump::Restore {
            storage: &self.storage,
            tools: &self.config.tools,
            tenant: target_tenant,
            target: &target,
            backup,
        };
        let restored = match entry.isolation {
            Isolation::Database => dump::restore_database(&job, &path).await,
            Isolation::Schema => match work.file("renamed.dump") {
                Ok(renamed) => {
                    dump::restore_schema(&job, &entry.source_name, &path, &renamed).await
                }
                Err(e) => Err(e),
            },
            Isolation::Shared => self
                .shared_copy(&target, target_tenant.id, CopyOp::Restore(&path))
                .await
                .map(|_| ()),
        };
        let restored = match restored {
            // The restored storage is at the backup's migration version: record it, so the
            // fleet migrator brings it forward.
            Ok(()) if entry.isolation != Isolation::Shared => {
                refresh_version(&self.storage, target_tenant)
                    .await
                    .map(|_| ())
            }
            other => other,
        };
        let _ = lock.release().await;
        if restored.is_ok() {
            metrics::counter!("tenant_restores_total", "isolation" => entry.isolation.as_str())
                .increment(1);
        }
        restored
    }

    async fn restored_rows(&self, backup: BackupId, owner: &Tenant) -> Result<TableRows> {
        let entry = catalog::get(&self.storage.global, backup).await?;
        if entry.isolation != owner.isolation {
            return Err(Error::invalid(
                "isolation",
                "the scratch storage's owner must have the backup's isolation",
            ));
        }
        let target = self.storage.target(owner)?;
        let (_, ext) = format_of(entry.isolation);
        let work = WorkDir::create(&self.config.work_dir).await?;
        let path = work.file(&format!("verify.{ext}"))?;
        self.fetch_checked(&entry.record, &path).await?;
        let rows = match entry.isolation {
            Isolation::Database | Isolation::Schema => {
                let schema =
                    (entry.isolation == Isolation::Schema).then_some(entry.source_name.as_str());
                let job = rows::Verify {
                    storage: &self.storage,
                    tools: &self.config.tools,
                    owner,
                    target: &target,
                    backup,
                    schema,
                };
                rows::restored_rows(&job, &path).await?
            }
            // A shared tenant's rows are restored into the shared tables themselves; the
            // artifact's COPY data is what such a restore writes: its rows are counted.
            Isolation::Shared => copy::artifact_rows(&path).await?,
        };
        metrics::counter!("tenant_backup_restore_tests_total", "isolation" => entry.isolation.as_str())
            .increment(1);
        Ok(rows)
    }

    async fn prune(&self, tenant: Option<TenantId>, retention: Duration) -> Result<u64> {
        let retention = time::Duration::try_from(retention)
            .map_err(|_| Error::invalid("retention", "is too long"))?;
        let cutoff = OffsetDateTime::now_utc()
            .checked_sub(retention)
            .ok_or_else(|| Error::invalid("retention", "is too long"))?;
        let expired = catalog::older_than(&self.storage.global, tenant, cutoff).await?;
        let mut pruned = 0;
        for record in expired {
            self.forget(&record).await?;
            pruned += 1;
        }
        Ok(pruned)
    }
}
