//! `Backup` and `BackupStore`: dumps of a tenant's data and where they are kept.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::domain::{BackupId, Isolation, Tenant, TenantId};
use crate::error::{Error, Result};

/// An artifact kept by a [`BackupStore`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StoredObject {
    /// Key within the store (`<tenant id>/<backup id>.dump`).
    pub key: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
}

impl StoredObject {
    /// An object description.
    pub fn new(key: impl Into<String>, size_bytes: u64, sha256: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            size_bytes,
            sha256: sha256.into(),
        }
    }
}

/// Validates a store key: relative, `/`-separated segments of `[A-Za-z0-9._-]`, no `..`.
///
/// # Errors
/// [`Error::InvalidInput`] on field `key`.
pub fn validate_store_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && key.len() <= 512
        && key.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "key",
            "must be a relative path of [A-Za-z0-9._-] segments",
        ))
    }
}

/// Where backup artifacts live (a directory, an object store).
///
/// # Contract
/// - `put_file` is atomic: a reader sees the whole artifact or none of it; the returned
///   checksum is of what was stored.
/// - `get_file` verifies the checksum recorded at `put_file` and refuses a corrupted artifact.
/// - Keys are validated by [`validate_store_key`]; nothing is written outside the store.
///
/// # Errors
/// - `InvalidInput` (field `key`) for a bad key; `NotFound` (entity `Backup`) for a missing one.
/// - `Internal` when a checksum does not match; `Unavailable` for I/O failures.
#[async_trait]
pub trait BackupStore: std::fmt::Debug + Send + Sync + 'static {
    /// Stores the content of the local file `source` under `key`.
    async fn put_file(&self, key: &str, source: &Path) -> Result<StoredObject>;

    /// Writes the artifact under `key` to the local file `dest`.
    async fn get_file(&self, key: &str, dest: &Path) -> Result<StoredObject>;

    /// Deletes an artifact; deleting a missing one is `Ok`.
    async fn delete(&self, key: &str) -> Result<()>;

    /// Artifacts whose key starts with `prefix`.
    async fn list(&self, prefix: &str) -> Result<Vec<StoredObject>>;
}

/// Rows per table of a tenant's data (`schema.table`, or a collection name, to a count).
pub type TableRows = BTreeMap<String, u64>;

/// One backup of one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BackupRecord {
    /// Identity.
    pub id: BackupId,
    /// Tenant whose data this is.
    pub tenant_id: TenantId,
    /// Store key of the artifact.
    pub key: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
    /// Format (`pg_dump_custom`, `json`, ...).
    pub format: String,
    /// When it was taken.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Isolation of the tenant it was taken of, when the adapter records it; a restore as a
    /// new tenant gives the new tenant this isolation.
    #[serde(default)]
    pub isolation: Option<Isolation>,
    /// Rows of each table when the backup was taken, counted in the snapshot the artifact
    /// holds, when the adapter records them (what [`Backup::restored_rows`] is compared with).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_rows: Option<TableRows>,
}

impl BackupRecord {
    /// A record of a stored artifact.
    pub fn new(
        id: BackupId,
        tenant_id: TenantId,
        object: StoredObject,
        format: impl Into<String>,
        created_at: OffsetDateTime,
    ) -> Self {
        Self {
            id,
            tenant_id,
            key: object.key,
            size_bytes: object.size_bytes,
            sha256: object.sha256,
            format: format.into(),
            created_at,
            isolation: None,
            table_rows: None,
        }
    }

    /// Records the rows of each table in the backup's snapshot.
    #[must_use]
    pub fn with_table_rows(mut self, rows: TableRows) -> Self {
        self.table_rows = Some(rows);
        self
    }

    /// Records the isolation of the tenant the backup was taken of.
    #[must_use]
    pub fn with_isolation(mut self, isolation: Isolation) -> Self {
        self.isolation = Some(isolation);
        self
    }
}

/// Dumps, lists, restores and prunes a tenant's data.
///
/// # Contract
/// - `backup` captures a consistent snapshot of the tenant's data and records it.
/// - `restore` into `target` replaces the target's data with the backup's; `target` may be the
///   same tenant or another, already provisioned tenant of the same isolation (a clone).
/// - `prune` deletes backups older than `retention` and their artifacts, and says how many.
/// - `restored_rows` restores a backup into scratch storage made for that call alone (never
///   a tenant's), counts the rows of each table there, and removes the scratch storage again,
///   also when the restore or the count fails.
///
/// # Errors
/// - `NotFound` (entity `Backup`) for an unknown backup id.
/// - `InvalidInput` when the target's isolation cannot take the backup.
/// - `Unavailable` when the database, store or a tool (`pg_dump`) cannot be used.
#[async_trait]
pub trait Backup: std::fmt::Debug + Send + Sync + 'static {
    /// Takes a backup of the tenant's data.
    async fn backup(&self, tenant: &Tenant) -> Result<BackupRecord>;

    /// One backup's record.
    async fn get(&self, backup: BackupId) -> Result<BackupRecord>;

    /// The tenant's backups, newest first.
    async fn list(&self, tenant: TenantId) -> Result<Vec<BackupRecord>>;

    /// Restores a backup into `target`.
    async fn restore(&self, backup: BackupId, target: &Tenant) -> Result<()>;

    /// Deletes one backup: its artifact, then its record.
    async fn delete(&self, backup: BackupId) -> Result<()>;

    /// Deletes backups of `tenant` (or of every tenant) older than `retention`.
    async fn prune(&self, tenant: Option<TenantId>, retention: Duration) -> Result<u64>;

    /// Restores a backup into scratch storage and counts the rows of each of its tables
    /// there (a restore test); the scratch storage is gone when this returns. `owner` is the
    /// tenant (normally the backup's own) whose server and role the scratch storage uses.
    ///
    /// # Errors
    /// `NotFound` for an unknown backup; `InvalidInput` on `backup` when the artifact does
    /// not match the checksum recorded when it was taken; `Unavailable` as for `restore`.
    async fn restored_rows(&self, backup: BackupId, owner: &Tenant) -> Result<TableRows>;
}
