//! What the conformance suites need of the in-memory adapters beyond their traits (feature
//! `testing`).

use std::sync::Arc;

use super::backup_store::InMemoryBackupStore;
use crate::testing::Fixture;
use crate::traits::BackupStore;

/// Damages the artifact of `key` in the [`InMemoryBackupStore`] kept as `fixture`'s guard, for
/// the backup store suite's `$corrupt` argument.
///
/// # Panics
/// When the store holds no artifact under `key`.
pub async fn corrupt_in_memory<C>(
    fixture: &Fixture<dyn BackupStore, Arc<InMemoryBackupStore>, C>,
    key: &str,
) {
    assert!(fixture.guard().corrupt(key), "no artifact under {key}");
}
