//! [`ObjectBackupStore`]: backup artifacts in any [`object_store`] backend: a local
//! directory ([`LocalFileSystem`]), memory ([`InMemory`]) or, with feature `s3`, an
//! S3-compatible bucket.
//!
//! Each artifact is one object under its key: the content followed by a 75-byte trailer,
//! `tm-sha256:<hex>\n`, the SHA-256 of the content. An operator recovers a dump with
//! `head -c -75 OBJECT > dump` and checks it against `tail -c 75 OBJECT`. One object per
//! artifact is what keeps every backend atomic: an object is replaced whole, and one read
//! returns an artifact with its own checksum.

mod budget;
mod format;
mod local;
#[cfg(feature = "s3")]
mod s3;
mod transfer;

#[cfg(feature = "testing")]
pub mod testing;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt};

pub(crate) use format::io_error;
#[cfg(feature = "s3")]
pub use s3::S3Config;

use budget::{Budget, DEFAULT_MAX_TOTAL_BYTES};
use format::{list_root, malformed, object_path, parse_trailer, store_error};
use local::LocalRoot;
use transfer::PutError;

use crate::error::{Entity, Error, Result};
use crate::traits::{BackupStore, StoredObject};

/// Trailer reads of one `list` in flight at once.
const LIST_CONCURRENCY: usize = 8;

/// A [`BackupStore`] over an [`ObjectStore`].
///
/// - `put_file` streams the source file into one object (a single request below 8 MiB, a
///   multipart upload above), hashing it on the way, and appends the checksum trailer. The
///   object appears when the upload completes, whole, or not at all.
/// - `get_file` reads the object in one request, writes the content to the destination
///   (`0600` on Unix) while hashing it, and refuses a mismatch with the trailer
///   (`Internal`), removing what it wrote.
/// - `list` lists the directory part of the prefix, keeps the keys that start with the
///   prefix, and reads each object's trailer (its size and checksum in one request). An
///   object without a trailer, which this store did not write, is left out.
/// - Keys are checked by [`validate_store_key`](crate::validate_store_key).
///
/// A local store ([`local`](Self::local)) keeps its root and the directories it creates
/// `0700` and its artifacts `0600`, fsyncs what it writes, and neither reads, writes nor lists
/// through a symbolic link that leaves the root. The in-memory store
/// ([`in_memory`](Self::in_memory)) is bounded by a byte budget.
#[derive(Clone)]
pub struct ObjectBackupStore {
    store: Arc<dyn ObjectStore>,
    local: Option<LocalRoot>,
    budget: Option<Arc<Budget>>,
}

impl fmt::Debug for ObjectBackupStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The backend's `Display` names it (`LocalFileSystem(file:///...)`, `AmazonS3(bucket)`)
        // without its credentials.
        f.debug_struct("ObjectBackupStore")
            .field("store", &format_args!("{}", self.store))
            .field("max_total_bytes", &self.max_total_bytes())
            .finish()
    }
}

impl ObjectBackupStore {
    /// A store over any `object_store` backend.
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self {
            store,
            local: None,
            budget: None,
        }
    }

    /// A store in the local directory `root` (or a mounted volume). The directory is created
    /// (`0700`) on the first write; a relative `root` is taken from the working directory now.
    /// Nothing touches the disk here: a root that cannot be used fails each operation with
    /// `Unavailable` (backend `filesystem`).
    pub fn local(root: impl Into<PathBuf>) -> Self {
        let root = LocalRoot::new(root.into());
        let files = LocalFileSystem::new().with_fsync(true);
        let store = PrefixStore::new(files, root.object_prefix());
        Self {
            store: Arc::new(store),
            local: Some(root),
            budget: None,
        }
    }

    /// A store in memory, for embedded mode and tests: artifacts are lost on restart, and
    /// together they may take at most 256 MiB (see
    /// [`with_max_total_bytes`](Self::with_max_total_bytes)).
    pub fn in_memory() -> Self {
        Self::new(Arc::new(InMemory::new())).with_max_total_bytes(DEFAULT_MAX_TOTAL_BYTES)
    }

    /// Bounds the bytes of the artifacts this value writes: a `put_file` that would pass `max`
    /// fails with `QuotaExceeded` (quota `backup_store_bytes`) and stores nothing; deleting
    /// frees room. The count covers what this value (and its clones) wrote, so it is exact
    /// for a store nothing else writes to, such as the in-memory one. Writes and deletes of a
    /// bounded store run one at a time.
    #[must_use]
    pub fn with_max_total_bytes(mut self, max: u64) -> Self {
        self.budget = Some(Arc::new(Budget::new(max)));
        self
    }

    /// The bound set by [`with_max_total_bytes`](Self::with_max_total_bytes), if any.
    pub fn max_total_bytes(&self) -> Option<u64> {
        self.budget.as_ref().map(|b| b.max())
    }

    /// Bytes of the artifacts counted by the bound (0 without one).
    pub fn used_bytes(&self) -> u64 {
        self.budget.as_ref().map_or(0, |b| b.used())
    }

    /// The root directory of a local store.
    pub fn root(&self) -> Option<&Path> {
        self.local.as_ref().map(|l| l.given.as_path())
    }

    /// The backend, for operations this trait does not offer (and for tests that damage an
    /// artifact behind the store's back).
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    async fn put_unbounded(
        &self,
        key: &str,
        source: &Path,
        limit: Option<u64>,
    ) -> std::result::Result<transfer::Written, PutError> {
        let path = object_path(key)?;
        if let Some(local) = &self.local {
            local.prepare(key).await?;
            if !local.contains(key).await? {
                return Err(PutError::Failed(Error::invalid(
                    "key",
                    "leads out of the store through a symbolic link",
                )));
            }
        }
        let written = transfer::put(&self.store, &path, source, limit).await?;
        if let Some(local) = &self.local {
            local.restrict(key).await?;
        }
        Ok(written)
    }

    /// The stored object of a listed key, or `None` when it is gone or not an artifact.
    async fn describe(&self, key: String) -> Result<Option<StoredObject>> {
        let path = object_path(&key)?;
        let Some((trailer, size)) = transfer::read_trailer(self.store.as_ref(), &path)
            .await
            .map_err(|e| Error::unavailable("object_store", e))?
        else {
            return Ok(None);
        };
        match parse_trailer(&trailer) {
            Some(sha256) => Ok(Some(StoredObject::new(key, size, sha256))),
            None => {
                tracing::warn!(error = %malformed(&key), "object left out of the listing");
                Ok(None)
            }
        }
    }
}

#[async_trait]
impl BackupStore for ObjectBackupStore {
    async fn put_file(&self, key: &str, source: &Path) -> Result<StoredObject> {
        let written = match &self.budget {
            None => self.put_unbounded(key, source, None).await,
            Some(budget) => {
                let mut hold = budget.hold().await;
                let written = self
                    .put_unbounded(key, source, Some(hold.allowance(key)))
                    .await;
                if let Ok(w) = &written {
                    hold.set(key, Some(w.size));
                }
                written
            }
        };
        match written {
            Ok(w) => Ok(StoredObject::new(key, w.size, w.sha256)),
            Err(PutError::Failed(e)) => Err(e),
            Err(PutError::TooLarge) => Err(self
                .budget
                .as_ref()
                .map_or_else(|| Error::internal("limit without a budget"), |b| b.full())),
        }
    }

    async fn get_file(&self, key: &str, dest: &Path) -> Result<StoredObject> {
        let path = object_path(key)?;
        // Nothing outside the root is the store's.
        if let Some(local) = &self.local
            && !local.contains(key).await?
        {
            return Err(Error::not_found(Entity::Backup, key));
        }
        let result = self
            .store
            .get(&path)
            .await
            .map_err(|e| store_error(key, e))?;
        let written = transfer::get(key, result, dest).await?;
        Ok(StoredObject::new(key, written.size, written.sha256))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = object_path(key)?;
        if let Some(local) = &self.local
            && !local.contains(key).await?
        {
            return Ok(());
        }
        let mut hold = match &self.budget {
            Some(budget) => Some(budget.hold().await),
            None => None,
        };
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(store_error(key, e)),
        }
        if let Some(hold) = &mut hold {
            hold.set(key, None);
        }
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<StoredObject>> {
        let root = list_root(prefix)?;
        if let Some(local) = &self.local {
            local.absolute()?;
        }
        let mut keys: Vec<String> = self
            .store
            .list(root.as_ref())
            .map_ok(|meta| meta.location.as_ref().to_owned())
            .try_filter(|key| std::future::ready(key.starts_with(prefix)))
            .try_collect()
            .await
            .map_err(|e| Error::unavailable("object_store", e))?;
        if let Some(local) = &self.local {
            keys = local.retain_contained(keys).await?;
        }
        let described: Vec<Option<StoredObject>> = futures::stream::iter(keys)
            .map(|key| self.describe(key))
            .buffer_unordered(LIST_CONCURRENCY)
            .try_collect()
            .await?;
        let mut objects: Vec<StoredObject> = described.into_iter().flatten().collect();
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }
}
