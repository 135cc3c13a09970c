//! `FilesystemBackupStore`: backup artifacts in a directory, each with a SHA-256 sidecar.
//!
//! Layout: the artifact of key `a/b.dump` is the file `<root>/a/b.dump`, and its checksum the
//! file `<root>/a/b.dump.sha256`, in `sha256sum` format (`<hex>  b.dump`), so an operator can
//! check a copy with `sha256sum -c`. Files being written are named `.<name>.<random>.tmp`
//! beside their destination; each directory has a `.lock` file that writers hold while they
//! rename an artifact and its sidecar into place, and readers hold (shared) while they pick
//! up the pair. Dot files are never listed.
//!
//! On Unix, directories the store creates are `0700` and every file it writes (artifacts,
//! sidecars, lock files, and the copies `get_file` writes) is created `0600`: backups hold
//! every tenant's data.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::error::{Entity, Error, Result};
use crate::traits::{BackupStore, StoredObject, validate_store_key};

/// Suffix of checksum sidecars.
const SIDECAR_SUFFIX: &str = ".sha256";
/// Lock file of a directory, taken by writers while they rename an artifact and its sidecar.
const LOCK_FILE: &str = ".lock";
/// Copy buffer size.
const CHUNK: usize = 64 * 1024;

/// A [`BackupStore`] in a local directory (or a mounted volume).
///
/// - `put_file` copies the source to a temporary file beside the destination while hashing
///   it, writes the checksum sidecar the same way, fsyncs both, renames both into place under
///   the directory's lock file, and fsyncs the directory: a reader sees a whole artifact or
///   none, and concurrent writers of one key leave one writer's artifact with its checksum.
/// - `get_file` reads the sidecar and opens the artifact under the same lock, shared with
///   other readers, so a read racing an overwrite gets the old or the new artifact with its
///   own checksum. It checks the copy it writes against that checksum and refuses a mismatch
///   (`Internal`), removing what it wrote.
/// - Keys are checked by [`validate_store_key`]; in addition no segment may start with `.`
///   (reserved for temporary files) and no key may end with `.sha256` (reserved for sidecars).
///
/// All I/O runs on tokio's blocking pool.
#[derive(Debug, Clone)]
pub struct FilesystemBackupStore {
    root: PathBuf,
}

impl FilesystemBackupStore {
    /// A store rooted at `root`, created on the first write.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of the artifact of `key`, after checking the key.
    fn path_of(&self, key: &str) -> Result<PathBuf> {
        validate_store_key(key)?;
        let reserved =
            key.split('/').any(|seg| seg.starts_with('.')) || key.ends_with(SIDECAR_SUFFIX);
        if reserved {
            return Err(Error::invalid(
                "key",
                "segments may not start with . and keys may not end with .sha256",
            ));
        }
        Ok(key.split('/').fold(self.root.clone(), |p, seg| p.join(seg)))
    }
}

#[async_trait]
impl BackupStore for FilesystemBackupStore {
    async fn put_file(&self, key: &str, source: &Path) -> Result<StoredObject> {
        let dest = self.path_of(key)?;
        let source = source.to_owned();
        let key = key.to_owned();
        blocking(move || put_blocking(&key, &source, &dest)).await
    }

    async fn get_file(&self, key: &str, dest: &Path) -> Result<StoredObject> {
        let path = self.path_of(key)?;
        let dest = dest.to_owned();
        let key = key.to_owned();
        blocking(move || get_blocking(&key, &path, &dest)).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path_of(key)?;
        blocking(move || {
            // The sidecar first: without it the artifact is neither listed nor readable.
            remove_if_present(&sidecar_path(&path))?;
            remove_if_present(&path)
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<StoredObject>> {
        validate_store_prefix(prefix)?;
        let root = self.root.clone();
        let prefix = prefix.to_owned();
        blocking(move || list_blocking(&root, &prefix)).await
    }
}

/// Maps an I/O failure to [`Error::Unavailable`] (backend `filesystem`). The one place this
/// crate maps `std::io::Error`.
pub(crate) fn io_error(e: io::Error) -> Error {
    Error::unavailable("filesystem", e)
}

/// SHA-256 of `bytes`, lowercase hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Checks a listing prefix: empty, or `[A-Za-z0-9._-/]` without `.`/`..` segments or a
/// leading `/`.
pub(crate) fn validate_store_prefix(prefix: &str) -> Result<()> {
    let ok = prefix.len() <= 512
        && !prefix.starts_with('/')
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
        && prefix.split('/').all(|seg| seg != "." && seg != "..");
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "prefix",
            "must be a relative path prefix of [A-Za-z0-9._-] segments",
        ))
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

/// Options that create files `0600` on Unix.
fn private_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal_with("filesystem task failed", e))?
}

fn sidecar_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(SIDECAR_SUFFIX);
    path.with_file_name(name)
}

/// A fresh temporary path beside `path`.
fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()))
}

/// Copies `from` into `to` and returns the SHA-256 (hex) and size of what was copied.
fn copy_hashing(from: &mut impl Read, to: &mut impl Write) -> io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        to.write_all(&buf[..n])?;
        size += n as u64;
    }
    to.flush()?;
    Ok((hex::encode(hasher.finalize()), size))
}

/// Writes a fresh temporary file beside `path` with `fill` and fsyncs it; removes it on failure.
fn write_temp<T>(
    path: &Path,
    fill: impl FnOnce(&mut File) -> io::Result<T>,
) -> io::Result<(PathBuf, T)> {
    let tmp = temp_path(path);
    let result = private_options()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut file| {
            let value = fill(&mut file)?;
            file.sync_all()?;
            Ok(value)
        });
    match result {
        Ok(value) => Ok((tmp, value)),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Renames the artifact and its sidecar into place under the directory's lock file, so that
/// concurrent writers of one key (in this process or another) cannot pair one's artifact
/// with the other's checksum.
fn publish(dir: &Path, artifact: (&Path, &Path), sidecar: (&Path, &Path)) -> io::Result<()> {
    let lock = private_options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK_FILE))?;
    lock.lock()?;
    let renamed =
        fs::rename(artifact.0, artifact.1).and_then(|()| fs::rename(sidecar.0, sidecar.1));
    lock.unlock()?;
    renamed
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn put_blocking(key: &str, source: &Path, dest: &Path) -> Result<StoredObject> {
    let mut src = File::open(source).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Error::invalid("source", "file does not exist"),
        _ => io_error(e),
    })?;
    let dir = dest
        .parent()
        .ok_or_else(|| Error::internal("artifact path has no parent"))?;
    create_private_dirs(dir).map_err(io_error)?;
    let (tmp_artifact, (sha256, size)) =
        write_temp(dest, |file| copy_hashing(&mut src, file)).map_err(io_error)?;
    let sidecar = sidecar_path(dest);
    let name = dest.file_name().unwrap_or_default().to_string_lossy();
    let line = format!("{sha256}  {name}\n");
    let published = write_temp(&sidecar, |file| file.write_all(line.as_bytes())).and_then(
        |(tmp_sidecar, ())| {
            let published = publish(dir, (&tmp_artifact, dest), (&tmp_sidecar, &sidecar));
            if published.is_err() {
                let _ = fs::remove_file(&tmp_sidecar);
            }
            published
        },
    );
    if let Err(e) = published {
        let _ = fs::remove_file(&tmp_artifact);
        return Err(io_error(e));
    }
    sync_dir(dir).map_err(io_error)?;
    Ok(StoredObject::new(key, size, sha256))
}

/// The checksum in a sidecar, or `None` when there is no sidecar.
fn read_sidecar(path: &Path) -> Result<Option<String>> {
    match fs::read_to_string(sidecar_path(path)) {
        Ok(text) => {
            let sha = text.split_whitespace().next().unwrap_or_default();
            if sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(Some(sha.to_ascii_lowercase()))
            } else {
                Err(Error::internal(format!(
                    "checksum sidecar of {} is malformed",
                    path.display()
                )))
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(e)),
    }
}

/// Reads the artifact's checksum and opens the artifact as one pair, under the directory's
/// lock shared with other readers: a writer renames both while holding it exclusively.
fn open_consistent(key: &str, path: &Path) -> Result<(String, File)> {
    let dir = path
        .parent()
        .ok_or_else(|| Error::internal("artifact path has no parent"))?;
    let lock = match File::open(dir.join(LOCK_FILE)) {
        Ok(lock) => Some(lock),
        // No writer ever published into this directory.
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_error(e)),
    };
    if let Some(lock) = &lock {
        lock.lock_shared().map_err(io_error)?;
    }
    let opened = read_sidecar(path).and_then(|expected| {
        let expected = expected.ok_or_else(|| Error::not_found(Entity::Backup, key))?;
        match File::open(path) {
            Ok(file) => Ok((expected, file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(Error::not_found(Entity::Backup, key))
            }
            Err(e) => Err(io_error(e)),
        }
    });
    if let Some(lock) = &lock {
        lock.unlock().map_err(io_error)?;
    }
    opened
}

fn get_blocking(key: &str, path: &Path, dest: &Path) -> Result<StoredObject> {
    // The open file stays the artifact that was paired with `expected`, even if an overwrite
    // renames another one over its name while it is copied.
    let (expected, mut src) = open_consistent(key, path)?;
    let copied = private_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(dest)
        .and_then(|mut out| {
            let copied = copy_hashing(&mut src, &mut out)?;
            out.sync_all()?;
            Ok(copied)
        });
    match copied {
        Ok((sha256, size)) if sha256 == expected => Ok(StoredObject::new(key, size, sha256)),
        Ok(_) => {
            let _ = fs::remove_file(dest);
            Err(Error::internal(format!(
                "backup artifact {key} does not match its checksum"
            )))
        }
        Err(e) => {
            let _ = fs::remove_file(dest);
            Err(io_error(e))
        }
    }
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(e)),
    }
}

fn list_blocking(root: &Path, prefix: &str) -> Result<Vec<StoredObject>> {
    // Walk only the directory the prefix names, not the whole store.
    let dir_part = prefix.rsplit_once('/').map_or("", |(dir, _)| dir);
    let start = dir_part
        .split('/')
        .filter(|seg| !seg.is_empty())
        .fold(root.to_owned(), |p, seg| p.join(seg));
    let start_key = dir_part.trim_matches('/').to_owned();
    let mut out = Vec::new();
    let mut pending = vec![(start, start_key)];
    while let Some((dir, dir_key)) = pending.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_error(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_error)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name.ends_with(SIDECAR_SUFFIX) {
                continue;
            }
            let key = if dir_key.is_empty() {
                name
            } else {
                format!("{dir_key}/{name}")
            };
            let file_type = entry.file_type().map_err(io_error)?;
            if file_type.is_dir() {
                if key.starts_with(prefix) || prefix.starts_with(&format!("{key}/")) {
                    pending.push((entry.path(), key));
                }
                continue;
            }
            if !file_type.is_file() || !key.starts_with(prefix) {
                continue;
            }
            let path = entry.path();
            // An artifact without its sidecar is still being written: not listed yet.
            let Some(sha256) = read_sidecar(&path)? else {
                continue;
            };
            let size = match entry.metadata() {
                Ok(meta) => meta.len(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error(e)),
            };
            out.push(StoredObject::new(key, size, sha256));
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}
