//! `InMemoryBackupStore`: backup artifacts kept in memory, within a byte budget.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use dashmap::DashMap;

use crate::error::{Entity, Error, Result};
use crate::fs_store::{io_error, sha256_hex, validate_store_prefix};
use crate::traits::{BackupStore, StoredObject, validate_store_key};

/// Default budget of an [`InMemoryBackupStore`]: 256 MiB.
const DEFAULT_MAX_TOTAL_BYTES: u64 = 256 * 1024 * 1024;

/// One stored artifact and the checksum recorded when it was put.
#[derive(Debug)]
struct Blob {
    bytes: Vec<u8>,
    sha256: String,
}

/// A [`BackupStore`] in memory, for embedded mode and tests. Artifacts are lost on restart.
///
/// Memory is bounded: the artifacts together never exceed
/// [`with_max_total_bytes`](Self::with_max_total_bytes) (256 MiB by default); a `put_file` that
/// would pass it fails with `QuotaExceeded` (quota `backup_store_bytes`) and stores nothing.
/// Prune old backups to make room.
///
/// Each artifact is kept with the SHA-256 recorded at `put_file`, which `get_file` checks.
#[derive(Debug)]
pub struct InMemoryBackupStore {
    objects: DashMap<String, Arc<Blob>>,
    used_bytes: AtomicU64,
    max_total_bytes: u64,
}

impl Default for InMemoryBackupStore {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryBackupStore {
    /// An empty store with a budget of 256 MiB.
    pub fn new() -> Self {
        Self {
            objects: DashMap::new(),
            used_bytes: AtomicU64::new(0),
            max_total_bytes: DEFAULT_MAX_TOTAL_BYTES,
        }
    }

    /// Sets the most bytes all artifacts together may take.
    #[must_use]
    pub fn with_max_total_bytes(mut self, max: u64) -> Self {
        self.max_total_bytes = max;
        self
    }

    /// Bytes taken by the stored artifacts.
    pub fn used_bytes(&self) -> u64 {
        self.used_bytes.load(Ordering::Relaxed)
    }

    /// The budget set by [`with_max_total_bytes`](Self::with_max_total_bytes).
    pub fn max_total_bytes(&self) -> u64 {
        self.max_total_bytes
    }

    /// Damages a stored artifact while keeping its recorded checksum, so the conformance suite
    /// can check that `get_file` refuses it. Returns whether the key existed.
    #[cfg(feature = "testing")]
    pub(crate) fn corrupt(&self, key: &str) -> bool {
        let Some(mut slot) = self.objects.get_mut(key) else {
            return false;
        };
        let mut bytes = slot.bytes.clone();
        match bytes.first_mut() {
            Some(first) => *first ^= 0xff,
            None => bytes.push(0),
        }
        let sha256 = slot.sha256.clone();
        *slot = Arc::new(Blob { bytes, sha256 });
        true
    }

    fn full(&self) -> Error {
        Error::QuotaExceeded {
            quota: "backup_store_bytes".into(),
            limit: self.max_total_bytes,
            retry_after: Duration::ZERO,
        }
    }

    /// Takes `delta` more bytes from the budget, or fails without taking any.
    fn reserve(&self, delta: u64) -> Result<()> {
        self.used_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(delta)
                    .filter(|total| *total <= self.max_total_bytes)
            })
            .map(|_| ())
            .map_err(|_| self.full())
    }
}

#[async_trait]
impl BackupStore for InMemoryBackupStore {
    async fn put_file(&self, key: &str, source: &Path) -> Result<StoredObject> {
        validate_store_key(key)?;
        let bytes = tokio::fs::read(source).await.map_err(io_error)?;
        let size = bytes.len() as u64;
        if size > self.max_total_bytes {
            return Err(self.full());
        }
        let sha256 = sha256_hex(&bytes);
        let blob = Arc::new(Blob {
            bytes,
            sha256: sha256.clone(),
        });
        // The entry guard serialises writers of this key while the budget is adjusted.
        match self.objects.entry(key.to_owned()) {
            dashmap::Entry::Occupied(mut o) => {
                let old = o.get().bytes.len() as u64;
                if size > old {
                    self.reserve(size - old)?;
                } else {
                    self.used_bytes.fetch_sub(old - size, Ordering::AcqRel);
                }
                o.insert(blob);
            }
            dashmap::Entry::Vacant(v) => {
                self.reserve(size)?;
                v.insert(blob);
            }
        }
        Ok(StoredObject::new(key, size, sha256))
    }

    async fn get_file(&self, key: &str, dest: &Path) -> Result<StoredObject> {
        validate_store_key(key)?;
        let blob = self
            .objects
            .get(key)
            .map(|b| Arc::clone(&b))
            .ok_or_else(|| Error::not_found(Entity::Backup, key))?;
        if sha256_hex(&blob.bytes) != blob.sha256 {
            return Err(Error::internal(format!(
                "backup artifact {key} does not match its checksum"
            )));
        }
        tokio::fs::write(dest, &blob.bytes)
            .await
            .map_err(io_error)?;
        Ok(StoredObject::new(
            key,
            blob.bytes.len() as u64,
            blob.sha256.clone(),
        ))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_store_key(key)?;
        if let Some((_, blob)) = self.objects.remove(key) {
            self.used_bytes
                .fetch_sub(blob.bytes.len() as u64, Ordering::AcqRel);
        }
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<StoredObject>> {
        validate_store_prefix(prefix)?;
        let mut objects: Vec<StoredObject> = self
            .objects
            .iter()
            .filter(|entry| entry.key().starts_with(prefix))
            .map(|entry| {
                StoredObject::new(
                    entry.key().clone(),
                    entry.value().bytes.len() as u64,
                    entry.value().sha256.clone(),
                )
            })
            .collect();
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }
}
