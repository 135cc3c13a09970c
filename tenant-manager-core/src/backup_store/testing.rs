//! What the backup store suite needs of [`ObjectBackupStore`] beyond its trait (feature
//! `testing`): damaging an artifact behind the store's back, for the suite's `$corrupt`
//! argument (wrap these in a function that fails the test on `Err`).

use std::sync::Arc;

use object_store::{ObjectStore, ObjectStoreExt};

use super::ObjectBackupStore;
use super::format::{object_path, store_error};
use crate::error::Result;
use crate::testing::Fixture;
use crate::traits::BackupStore;

/// Flips the first byte of the object of `key` in an `object_store` backend, behind the
/// backup store's back (its recorded checksum stays).
///
/// # Errors
/// `InvalidInput` for a key the store refuses, `NotFound` when no object is stored under it,
/// `Unavailable` when the backend fails.
pub async fn corrupt_object(store: &dyn ObjectStore, key: &str) -> Result<()> {
    let path = object_path(key)?;
    let got = store.get(&path).await.map_err(|e| store_error(key, e))?;
    let mut bytes = got.bytes().await.map_err(|e| store_error(key, e))?.to_vec();
    match bytes.first_mut() {
        Some(b) => *b ^= 0xff,
        None => bytes.push(0),
    }
    store
        .put(&path, bytes.into())
        .await
        .map_err(|e| store_error(key, e))?;
    Ok(())
}

/// Damages the artifact of `key` in the [`ObjectBackupStore`] kept as `fixture`'s guard.
///
/// # Errors
/// As [`corrupt_object`].
pub async fn corrupt_stored<C>(
    fixture: &Fixture<dyn BackupStore, Arc<ObjectBackupStore>, C>,
    key: &str,
) -> Result<()> {
    corrupt_object(fixture.guard().object_store().as_ref(), key).await
}
