//! Conformance suite of [`Backup`], over a [`BackupHarness`].
//!
//! A backup adapter cannot be tested alone: the suite needs tenants whose storage is
//! provisioned and rows in it to back up, restore and compare. The harness gives exactly
//! that, whatever the backend. An adapter implements [`BackupHarness`] for its backend and
//! expands the macro with a factory returning a fresh harness:
//!
//! ```text
//! struct PgHarness { backup: PgDumpBackup, provisioner: PostgresProvisioner, /* ... */ }
//!
//! #[async_trait]
//! impl BackupHarness for PgHarness {
//!     fn backup(&self) -> &dyn Backup { &self.backup }
//!     fn store(&self) -> &dyn BackupStore { self.backup.store().as_ref() }
//!     fn isolations(&self) -> &[Isolation] { &[Isolation::Database, Isolation::Schema] }
//!     async fn new_tenant(&self, isolation: Isolation) -> Result<Tenant> { /* register + provision */ }
//!     async fn write_rows(&self, tenant: &Tenant, rows: &[&str]) -> Result<()> { /* INSERT */ }
//!     async fn read_rows(&self, tenant: &Tenant) -> Result<Vec<String>> { /* SELECT */ }
//! }
//!
//! async fn harness() -> Fixture<dyn BackupHarness> {
//!     let db = TestDatabase::create().await;
//!     Fixture::with_guard(Arc::new(PgHarness::new(&db).await), db)
//! }
//! tenant_manager_core::backup_conformance!(harness);
//! ```
//!
//! Each case runs for every isolation the harness lists.

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::support::expect_not_found;
use crate::domain::{BackupId, Isolation, Tenant};
use crate::error::{Entity, Result};
use crate::traits::{Backup, BackupStore};

/// What the backup suite needs of a backend besides the [`Backup`] under test.
///
/// # Contract
/// - Every tenant `new_tenant` returns is registered, provisioned, `Active` and empty, and
///   belongs to no other case (cases share one harness).
/// - `read_rows` returns exactly the rows written to that tenant (by `write_rows` or by a
///   restore), and nothing of any other tenant.
///
/// # Errors
/// The backend's errors, as its adapters report them; the suite fails the case on any.
#[async_trait]
pub trait BackupHarness: Send + Sync + 'static {
    /// The backup adapter under test.
    fn backup(&self) -> &dyn Backup;

    /// The store the adapter keeps its artifacts in: the suite overwrites one there, as
    /// someone with access to the store could, to check that restores refuse it.
    fn store(&self) -> &dyn BackupStore;

    /// The isolation modes to test (at least one); all three unless the harness says fewer.
    fn isolations(&self) -> &[Isolation] {
        &[Isolation::Database, Isolation::Schema, Isolation::Shared]
    }

    /// A new tenant of this isolation, registered and provisioned, with no rows.
    async fn new_tenant(&self, isolation: Isolation) -> Result<Tenant>;

    /// Adds rows (opaque strings) to the tenant's data.
    async fn write_rows(&self, tenant: &Tenant, rows: &[&str]) -> Result<()>;

    /// The tenant's rows, in any order.
    async fn read_rows(&self, tenant: &Tenant) -> Result<Vec<String>>;
}

/// Expands one `#[tokio::test]` per backup case, each on a fresh fixture from `$factory`
/// (`async fn() -> Fixture<dyn BackupHarness>`).
#[macro_export]
macro_rules! backup_conformance {
    ($factory:path) => {
        $crate::__conformance_cases!($factory; backup;
            restore_brings_back_old_rows,
            clone_into_new_tenant_gives_identical_rows,
            list_newest_first,
            prune_by_retention,
            unknown_backup_is_not_found,
            a_replaced_artifact_is_refused,
        );
    };
}

fn isolations(h: &dyn BackupHarness) -> Vec<Isolation> {
    let modes = h.isolations().to_vec();
    assert!(
        !modes.is_empty(),
        "the harness lists at least one isolation"
    );
    modes
}

async fn rows(h: &dyn BackupHarness, tenant: &Tenant) -> Vec<String> {
    let mut rows = h.read_rows(tenant).await.expect("read rows");
    rows.sort();
    rows
}

fn owned(rows: &[&str]) -> Vec<String> {
    let mut rows: Vec<String> = rows.iter().map(|r| (*r).to_owned()).collect();
    rows.sort();
    rows
}

/// Restoring a backup into its own tenant after the data changed brings back the rows as
/// they were at backup time.
pub async fn restore_brings_back_old_rows(h: &dyn BackupHarness) {
    for isolation in isolations(h) {
        let tenant = h.new_tenant(isolation).await.expect("new tenant");
        let before = ["alpha", "O'Brien; DROP TABLE x; --", "ünïcødé ☃"];
        h.write_rows(&tenant, &before).await.expect("write");
        let record = h.backup().backup(&tenant).await.expect("backup");
        assert_eq!(record.tenant_id, tenant.id);
        assert!(record.size_bytes > 0);
        assert_eq!(record.sha256.len(), 64);
        assert!(record.sha256.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!record.format.is_empty());
        h.write_rows(&tenant, &["written after the backup"])
            .await
            .expect("write more");
        assert_eq!(rows(h, &tenant).await.len(), 4);
        h.backup()
            .restore(record.id, &tenant)
            .await
            .expect("restore");
        assert_eq!(rows(h, &tenant).await, owned(&before), "{isolation}");
        // Restoring is repeatable.
        h.backup()
            .restore(record.id, &tenant)
            .await
            .expect("restore again");
        assert_eq!(rows(h, &tenant).await, owned(&before), "{isolation}");
    }
}

/// Restoring a tenant's backup into another new tenant of the same isolation gives it the
/// same rows, and leaves the source as it was.
pub async fn clone_into_new_tenant_gives_identical_rows(h: &dyn BackupHarness) {
    for isolation in isolations(h) {
        let source = h.new_tenant(isolation).await.expect("source");
        let written: Vec<String> = (0..50).map(|i| format!("row-{i:03}")).collect();
        let refs: Vec<&str> = written.iter().map(String::as_str).collect();
        h.write_rows(&source, &refs).await.expect("write");
        let record = h.backup().backup(&source).await.expect("backup");
        let clone = h.new_tenant(isolation).await.expect("clone target");
        h.write_rows(&clone, &["the clone's own row"])
            .await
            .expect("write clone");
        h.backup().restore(record.id, &clone).await.expect("clone");
        assert_eq!(rows(h, &clone).await, rows(h, &source).await, "{isolation}");
        assert_eq!(rows(h, &source).await, owned(&refs));
        // The clone is independent of its source.
        h.write_rows(&clone, &["only in the clone"])
            .await
            .expect("write clone");
        assert_eq!(rows(h, &source).await, owned(&refs));
        // The backup stays the source's.
        let listed = h.backup().list(source.id).await.expect("list");
        assert_eq!(listed.first().map(|r| r.id), Some(record.id));
        assert!(h.backup().list(clone.id).await.expect("list").is_empty());
    }
}

/// A tenant's backups are listed newest first, and only its own.
pub async fn list_newest_first(h: &dyn BackupHarness) {
    let isolation = isolations(h)[0];
    let tenant = h.new_tenant(isolation).await.expect("tenant");
    let other = h.new_tenant(isolation).await.expect("other");
    assert!(h.backup().list(tenant.id).await.expect("list").is_empty());
    let mut taken = Vec::new();
    for i in 0..3 {
        h.write_rows(&tenant, &[&format!("row {i}")])
            .await
            .expect("write");
        taken.push(h.backup().backup(&tenant).await.expect("backup"));
    }
    h.backup().backup(&other).await.expect("other's backup");
    let listed = h.backup().list(tenant.id).await.expect("list");
    let ids: Vec<BackupId> = listed.iter().map(|r| r.id).collect();
    let expected: Vec<BackupId> = taken.iter().rev().map(|r| r.id).collect();
    assert_eq!(ids, expected);
    assert!(listed.iter().all(|r| r.tenant_id == tenant.id));
    assert!(
        listed
            .windows(2)
            .all(|w| w[0].created_at >= w[1].created_at)
    );
    for (record, original) in listed.iter().rev().zip(&taken) {
        assert_eq!(record, original);
    }
}

/// Pruning removes exactly the backups older than the retention (of one tenant, or of all),
/// says how many, and a pruned backup can no longer be restored.
pub async fn prune_by_retention(h: &dyn BackupHarness) {
    let isolation = isolations(h)[0];
    let tenant = h.new_tenant(isolation).await.expect("tenant");
    let other = h.new_tenant(isolation).await.expect("other");
    h.write_rows(&tenant, &["a"]).await.expect("write");
    let old = h.backup().backup(&tenant).await.expect("old backup");
    let others_old = h.backup().backup(&other).await.expect("other's backup");
    // Two seconds separate the old backups from the recent one; the retention cut falls one
    // second before the recent one, so scheduling delays below a second do not matter.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let recent = h.backup().backup(&tenant).await.expect("recent backup");
    let age = OffsetDateTime::now_utc() - recent.created_at;
    let retention = Duration::try_from(age).unwrap_or_default() + Duration::from_secs(1);
    assert_eq!(
        h.backup()
            .prune(Some(tenant.id), Duration::from_secs(30 * 24 * 3600))
            .await
            .expect("prune nothing"),
        0
    );
    assert_eq!(
        h.backup()
            .prune(Some(tenant.id), retention)
            .await
            .expect("prune"),
        1
    );
    let left: Vec<BackupId> = h
        .backup()
        .list(tenant.id)
        .await
        .expect("list")
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(left, vec![recent.id]);
    expect_not_found(h.backup().restore(old.id, &tenant).await, Entity::Backup);
    // The other tenant's old backup was out of scope; pruning every tenant takes it.
    assert_eq!(
        h.backup().list(other.id).await.expect("list other").len(),
        1
    );
    let age = OffsetDateTime::now_utc() - recent.created_at;
    let retention = Duration::try_from(age).unwrap_or_default() + Duration::from_secs(1);
    assert_eq!(
        h.backup().prune(None, retention).await.expect("prune all"),
        1
    );
    assert!(
        h.backup()
            .list(other.id)
            .await
            .expect("list other")
            .is_empty()
    );
    expect_not_found(
        h.backup().restore(others_old.id, &other).await,
        Entity::Backup,
    );
    // The recent backup still restores.
    h.backup()
        .restore(recent.id, &tenant)
        .await
        .expect("restore recent");
    assert_eq!(rows(h, &tenant).await, owned(&["a"]));
}

/// Restoring an unknown backup id is `NotFound` (entity `Backup`) and changes nothing.
pub async fn unknown_backup_is_not_found(h: &dyn BackupHarness) {
    let isolation = isolations(h)[0];
    let tenant = h.new_tenant(isolation).await.expect("tenant");
    h.write_rows(&tenant, &["kept"]).await.expect("write");
    expect_not_found(
        h.backup().restore(BackupId::new(), &tenant).await,
        Entity::Backup,
    );
    assert_eq!(rows(h, &tenant).await, owned(&["kept"]));
}

/// An artifact replaced in the store after the backup (through the store, so the store's own
/// checksum matches the new content; by another backup's artifact, valid in every other way)
/// is refused by a restore, which changes nothing: restores trust the checksum recorded when
/// the backup was taken, not the store's.
pub async fn a_replaced_artifact_is_refused(h: &dyn BackupHarness) {
    for isolation in isolations(h) {
        let tenant = h.new_tenant(isolation).await.expect("tenant");
        h.write_rows(&tenant, &["kept"]).await.expect("write");
        let first = h.backup().backup(&tenant).await.expect("backup");
        h.write_rows(&tenant, &["later"]).await.expect("write more");
        let second = h.backup().backup(&tenant).await.expect("second backup");
        h.write_rows(&tenant, &["latest"])
            .await
            .expect("write again");
        let dir = super::backup_store::ScratchDir::new("replaced-artifact");
        let other = dir.path().join("second");
        h.store()
            .get_file(&second.key, &other)
            .await
            .expect("read the second artifact");
        h.store()
            .put_file(&first.key, &other)
            .await
            .expect("put it in place of the first");
        let refused = h.backup().restore(first.id, &tenant).await;
        assert!(
            refused.is_err(),
            "{isolation}: a replaced artifact was restored"
        );
        assert_eq!(
            rows(h, &tenant).await,
            owned(&["kept", "later", "latest"]),
            "{isolation}: the tenant's data changed"
        );
    }
}
