//! What the backup store suite needs of [`ObjectBackupStore`] beyond its trait (feature
//! `testing`): damaging an artifact behind the store's back, for the suite's `$corrupt`
//! argument.

// Test support: a failed set-up step panics with its reason, as in `testing`.
#![allow(clippy::expect_used)]

use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use super::ObjectBackupStore;
use crate::testing::Fixture;
use crate::traits::BackupStore;

/// Flips the first byte of the object of `key` in an `object_store` backend, behind the
/// backup store's back (its recorded checksum stays).
///
/// # Panics
/// When the key is not a valid object path or no object is stored under it.
pub async fn corrupt_object(store: &dyn ObjectStore, key: &str) {
    let path = ObjectPath::parse(key).expect("a valid key");
    let got = store.get(&path).await.expect("no artifact under the key");
    let mut bytes = got.bytes().await.expect("read artifact").to_vec();
    match bytes.first_mut() {
        Some(b) => *b ^= 0xff,
        None => bytes.push(0),
    }
    store
        .put(&path, bytes.into())
        .await
        .expect("write artifact");
}

/// Damages the artifact of `key` in the [`ObjectBackupStore`] kept as `fixture`'s guard.
///
/// # Panics
/// As [`corrupt_object`].
pub async fn corrupt_stored<C>(
    fixture: &Fixture<dyn BackupStore, Arc<ObjectBackupStore>, C>,
    key: &str,
) {
    corrupt_object(fixture.guard().object_store().as_ref(), key).await;
}
