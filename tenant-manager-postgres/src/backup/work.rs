//! Private work directories: one per backup or restore, created `0700` under an unpredictable
//! name inside the configured work directory, its files created `0600` before any tool writes
//! them, and removed with everything in it when the operation ends.
//!
//! Each directory holds a `.lock` file its operation keeps locked (it is locked before it gets
//! that name). A process that dies leaves its directory unlocked: the next operation with the
//! same work directory removes it.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tenant_manager_core::{Error, Result};

fn io_error(e: io::Error) -> Error {
    Error::unavailable("backup work directory", e)
}

/// One operation's private directory; removed on drop.
#[derive(Debug)]
pub(crate) struct WorkDir {
    path: PathBuf,
    _lock: File,
}

/// Name prefix of work directories.
const PREFIX: &str = "tm-work-";
/// The lock file of a work directory.
const LOCK: &str = ".lock";

/// Removes the work directories in `parent` whose operation is gone (lock file not held).
fn sweep(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let is_ours = entry.file_name().to_string_lossy().starts_with(PREFIX)
            && entry.file_type().is_ok_and(|t| t.is_dir());
        if !is_ours {
            continue;
        }
        let dir = entry.path();
        // No lock file: not one of ours, or still being created.
        let Ok(lock) = File::open(dir.join(LOCK)) else {
            continue;
        };
        if lock.try_lock().is_ok() {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

fn dir_builder(recursive: bool) -> DirBuilder {
    let mut builder = DirBuilder::new();
    builder.recursive(recursive);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
}

fn private_file(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

impl WorkDir {
    /// Creates a fresh private directory inside `parent` (created `0700` when missing).
    pub(crate) async fn create(parent: &Path) -> Result<Self> {
        let parent = parent.to_owned();
        tokio::task::spawn_blocking(move || {
            dir_builder(true).create(&parent)?;
            sweep(&parent);
            let path = parent.join(format!("{PREFIX}{}", uuid::Uuid::new_v4().simple()));
            // Not recursive: fails if the name exists, so nobody can plant it beforehand.
            dir_builder(false).create(&path)?;
            let pending = path.join(".lock.new");
            let lock = private_file(&pending)?;
            lock.lock()?;
            std::fs::rename(&pending, path.join(LOCK))?;
            Ok(Self { path, _lock: lock })
        })
        .await
        .map_err(|e| Error::internal_with("work directory task failed", e))?
        .map_err(io_error)
    }

    /// A new empty file `name` in the directory, created `0600`.
    pub(crate) fn file(&self, name: &str) -> Result<PathBuf> {
        let path = self.path.join(name);
        private_file(&path).map_err(io_error)?;
        Ok(path)
    }

    /// The directory.
    #[cfg(test)]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// SHA-256 (hex) and size of the file at `path`, read on the blocking pool.
pub(crate) async fn sha256_of(path: &Path) -> Result<(String, u64)> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || -> io::Result<(String, u64)> {
        let mut file = File::open(path)?;
        let mut hasher = Sha256::new();
        let size = io::copy(&mut file, &mut hasher)?;
        Ok((hex::encode(hasher.finalize()), size))
    })
    .await
    .map_err(|e| Error::internal_with("checksum task failed", e))?
    .map_err(io_error)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    #[cfg(unix)]
    use super::*;
    #[cfg(unix)]
    use std::os::unix::fs::PermissionsExt;

    /// Modes are Unix permissions.
    #[cfg(unix)]
    #[tokio::test]
    async fn work_dirs_are_private_and_removed() {
        let parent = std::env::temp_dir().join(format!(
            "tm-work-test-{}/nested",
            uuid::Uuid::new_v4().simple()
        ));
        let dir = WorkDir::create(&parent).await.expect("dir");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&parent), 0o700);
        assert_eq!(mode(dir.path()), 0o700);
        let file = dir.file("a.dump").expect("file");
        // A live operation's directory survives another's sweep; a dead one's does not.
        let dead = parent.join(format!("{PREFIX}dead"));
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join(LOCK), b"").unwrap();
        std::fs::write(dead.join("backup.dump"), b"partial").unwrap();
        let unlocked = parent.join(format!("{PREFIX}creating"));
        std::fs::create_dir(&unlocked).unwrap();
        assert_eq!(mode(&file), 0o600);
        assert!(dir.file("a.dump").is_err(), "an existing file is refused");
        std::fs::write(&file, b"abc").unwrap();
        let (sha, size) = sha256_of(&file).await.expect("sha");
        assert_eq!(size, 3);
        assert_eq!(
            sha,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let other = WorkDir::create(&parent).await.expect("second");
        assert_ne!(other.path(), dir.path());
        assert!(file.exists(), "a live operation's file was swept");
        assert!(!dead.exists(), "a dead operation's directory was left");
        assert!(
            unlocked.exists(),
            "a directory without a lock file is not ours to remove"
        );
        let path = dir.path().to_owned();
        drop(dir);
        assert!(!path.exists());
        drop(other);
        let _ = std::fs::remove_dir_all(parent.parent().unwrap());
    }
}
