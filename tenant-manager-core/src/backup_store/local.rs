//! What a store in a local directory adds to `LocalFileSystem`: private modes, and no path
//! that leaves the root through a symbolic link.
//!
//! The root and every directory the store creates are `0700`, every artifact `0600` (set
//! after it is renamed into place: the `0700` root keeps it from other users meanwhile).
//! The root is created on the first write, as the store is built without touching the disk.

use std::fs::DirBuilder;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use object_store::path::{Path as ObjectPath, PathPart};

use super::format::io_error;
use crate::error::{Error, Result};

/// The root of a local store, as given and made absolute.
#[derive(Debug, Clone)]
pub(super) struct LocalRoot {
    pub(super) given: PathBuf,
    /// The absolute root, or why it could not be made (an empty path, no working directory).
    absolute: Result<PathBuf, Arc<io::Error>>,
}

impl LocalRoot {
    pub(super) fn new(given: PathBuf) -> Self {
        let absolute = std::path::absolute(&given).map_err(Arc::new);
        Self { given, absolute }
    }

    /// The absolute root.
    ///
    /// # Errors
    /// `Unavailable` (backend `filesystem`) when the root could not be made absolute.
    pub(super) fn absolute(&self) -> Result<&Path> {
        self.absolute
            .as_deref()
            .map_err(|e| Error::unavailable("filesystem", io::Error::new(e.kind(), e.to_string())))
    }

    /// The root as an object path of `LocalFileSystem` (whose root is `/`).
    pub(super) fn object_prefix(&self) -> ObjectPath {
        let root = self.absolute.as_deref().unwrap_or(self.given.as_path());
        root.components()
            .filter_map(|c| match c {
                Component::Normal(part) => {
                    Some(PathPart::from(part.to_string_lossy().into_owned()))
                }
                _ => None,
            })
            .collect()
    }

    fn path_of(&self, key: &str) -> Result<PathBuf> {
        let root = self.absolute()?;
        Ok(key.split('/').fold(root.to_owned(), |p, seg| p.join(seg)))
    }

    /// Whether `key` resolves inside the root (a key that does not exist yet does).
    fn contains_blocking(&self, key: &str) -> Result<bool> {
        let root = self.absolute()?;
        let Ok(canonical_root) = std::fs::canonicalize(root) else {
            // No root yet: nothing is stored, nothing to escape through.
            return Ok(true);
        };
        let mut path = self.path_of(key)?;
        // The nearest existing ancestor decides.
        loop {
            if let Ok(resolved) = std::fs::canonicalize(&path) {
                return Ok(resolved.starts_with(&canonical_root));
            }
            if path.as_path() == root || !path.pop() {
                return Ok(true);
            }
        }
    }

    /// Keeps of `keys` those that resolve inside the root.
    pub(super) async fn retain_contained(&self, keys: Vec<String>) -> Result<Vec<String>> {
        let root = self.clone();
        blocking(move || {
            let mut kept = Vec::with_capacity(keys.len());
            for key in keys {
                if root.contains_blocking(&key)? {
                    kept.push(key);
                }
            }
            Ok(kept)
        })
        .await
    }

    /// Whether `key` resolves inside the root, through whatever symbolic links it meets.
    pub(super) async fn contains(&self, key: &str) -> Result<bool> {
        let root = self.clone();
        let key = key.to_owned();
        blocking(move || root.contains_blocking(&key)).await
    }

    /// Creates the directories of `key` (`0700`) before a write.
    pub(super) async fn prepare(&self, key: &str) -> Result<()> {
        let path = self.path_of(key)?;
        blocking(move || match path.parent() {
            Some(dir) => create_private_dirs(dir).map_err(io_error),
            None => Ok(()),
        })
        .await
    }

    /// Makes the artifact of `key` `0600` after a write.
    pub(super) async fn restrict(&self, key: &str) -> Result<()> {
        let path = self.path_of(key)?;
        blocking(move || {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                match std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)) {
                    // Deleted by another writer meanwhile: nothing to restrict.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    other => other.map_err(io_error)?,
                }
            }
            #[cfg(not(unix))]
            let _ = path;
            Ok(())
        })
        .await
    }
}

/// Creates `dir` and its missing parents, `0700` on Unix.
fn create_private_dirs(dir: &Path) -> io::Result<()> {
    let mut builder = DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal_with("filesystem task failed", e))?
}
