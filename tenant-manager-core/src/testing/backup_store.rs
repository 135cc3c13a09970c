//! Conformance suite of [`BackupStore`].
//!
//! An adapter runs it with a factory returning a fresh store, and a function that damages a
//! stored artifact behind the store's back (so the suite can check that `get_file` refuses
//! it), then expands the macro in a test file:
//!
//! ```text
//! async fn store() -> Fixture<dyn BackupStore, ScratchDir> {
//!     let root = ScratchDir::new("local-store");
//!     Fixture::with_guard(Arc::new(ObjectBackupStore::local(root.path())), root)
//! }
//! async fn corrupt(fixture: &Fixture<dyn BackupStore, ScratchDir>, key: &str) {
//!     corrupt_file(fixture.guard().path(), key).await;
//! }
//! tenant_manager_core::backup_store_conformance!(store, corrupt);
//! ```
//!
//! [`corrupt_file`] damages an artifact kept as a file under a root directory (a local
//! store); `backup_store::testing` damages one of an `ObjectBackupStore` in any backend. Cases
//! use keys under a random prefix and stage files in a [`ScratchDir`] they remove.

use std::future::Future;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::run_concurrently;
use super::support::{expect_invalid, expect_not_found, random_hex};
use crate::error::{Entity, Error};
use crate::traits::{BackupStore, StoredObject};

/// Expands one `#[tokio::test]` per backup store case, each on a fresh fixture from
/// `$factory` (`async fn() -> Fixture<dyn BackupStore>`); `$corrupt`
/// (`async fn(&Fixture<dyn BackupStore>, &str)`) damages the artifact of a key.
#[macro_export]
macro_rules! backup_store_conformance {
    ($factory:path, $corrupt:path) => {
        $crate::__conformance_cases!($factory; backup_store;
            round_trip_with_checksum,
            overwrite_is_atomic,
            bad_keys_are_refused,
            list_by_prefix,
            delete_missing_is_ok,
            get_missing_is_not_found,
        );

        #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn corrupted_artifact_is_refused() {
            let fixture = $factory().await;
            let fixture = &fixture;
            $crate::testing::backup_store::corrupted_artifact_is_refused(
                &*fixture.subject,
                |key: String| async move { $corrupt(fixture, &key).await },
            )
            .await;
        }
    };
}

/// A uniquely named directory under the system's temporary directory, removed on drop.
#[derive(Debug)]
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// Creates `<tmp>/tenant-manager-<tag>-<random>`.
    pub fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!("tenant-manager-{tag}-{}", random_hex(16)));
        std::fs::create_dir_all(&path).expect("create scratch dir");
        Self(path)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `content` to the file `name` inside and returns its path.
    pub fn write(&self, name: &str, content: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, content).expect("write scratch file");
        path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Flips the first byte of the artifact of `key` stored as a file under `root` (the layout of
/// `ObjectBackupStore::local`: the object of `a/b.dump` is the file `<root>/a/b.dump`).
pub async fn corrupt_file(root: &Path, key: &str) {
    let path = key.split('/').fold(root.to_owned(), |p, seg| p.join(seg));
    let mut bytes = tokio::fs::read(&path).await.expect("read artifact");
    match bytes.first_mut() {
        Some(b) => *b ^= 0xff,
        None => bytes.push(0),
    }
    tokio::fs::write(&path, bytes)
        .await
        .expect("write artifact");
}

/// SHA-256 of `bytes`, lowercase hex, as stores report it.
fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Deterministic content of `len` bytes that differs with `seed`.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

fn prefix() -> String {
    format!("cf-{}", random_hex(12))
}

/// What was stored reads back byte for byte, with the SHA-256 and size of the content.
pub async fn round_trip_with_checksum(s: &dyn BackupStore) {
    let dir = ScratchDir::new("store-rt");
    let p = prefix();
    for (name, content) in [
        ("big.dump", pattern(1024 * 1024 + 7, 1)),
        ("empty.dump", Vec::new()),
        ("tiny.json", b"{\"a\":1}".to_vec()),
    ] {
        let key = format!("{p}/{name}");
        let source = dir.write(name, &content);
        let put = s.put_file(&key, &source).await.expect("put");
        let expected = StoredObject::new(key.clone(), content.len() as u64, sha256_hex(&content));
        assert_eq!(put, expected);
        let dest = dir.path().join(format!("{name}.out"));
        let got = s.get_file(&key, &dest).await.expect("get");
        assert_eq!(got, expected);
        assert_eq!(tokio::fs::read(&dest).await.expect("read back"), content);
        let listed = s.list(&key).await.expect("list");
        assert_eq!(listed, vec![expected]);
    }
}

/// Overwriting a key replaces the artifact whole: concurrent readers get the old or the new
/// artifact with its own checksum, never a mix or an error, and the last write wins.
pub async fn overwrite_is_atomic(s: &dyn BackupStore) {
    let dir = ScratchDir::new("store-ow");
    let key = format!("{}/artifact.dump", prefix());
    let old = pattern(256 * 1024, 3);
    let new = pattern(256 * 1024 + 100, 4);
    let old_src = dir.write("old", &old);
    let new_src = dir.write("new", &new);
    s.put_file(&key, &old_src).await.expect("first put");
    let (old_sha, new_sha) = (sha256_hex(&old), sha256_hex(&new));
    let results = run_concurrently(6, |i| {
        let (key, dir, old_src, new_src) = (&key, &dir, &old_src, &new_src);
        let (old, new, old_sha, new_sha) = (&old, &new, &old_sha, &new_sha);
        async move {
            if i == 0 {
                for round in 0..20 {
                    let src = if round % 2 == 0 { new_src } else { old_src };
                    s.put_file(key, src).await.expect("overwrite");
                }
                return;
            }
            let dest = dir.path().join(format!("read-{i}"));
            for _ in 0..20 {
                let got = s.get_file(key, &dest).await.expect("read during overwrite");
                let bytes = tokio::fs::read(&dest).await.expect("read back");
                if got.sha256 == *old_sha {
                    assert!(bytes == *old, "content does not match the old checksum");
                } else {
                    assert_eq!(got.sha256, *new_sha);
                    assert!(bytes == *new, "content does not match the new checksum");
                }
                assert_eq!(got.size_bytes, bytes.len() as u64);
            }
        }
    });
    assert_eq!(results.len(), 6);
    // 20 alternating writes starting with `new`: the last one wrote `old`.
    let dest = dir.path().join("final");
    let last = s.get_file(&key, &dest).await.expect("final read");
    assert_eq!(last.sha256, old_sha);
    assert_eq!(s.list(&key).await.expect("list").len(), 1);
}

/// A damaged artifact is refused by `get_file` (`Internal`, never its content).
pub async fn corrupted_artifact_is_refused<F, Fut>(s: &dyn BackupStore, corrupt: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = ScratchDir::new("store-bad");
    let key = format!("{}/victim.dump", prefix());
    let source = dir.write("victim", &pattern(64 * 1024, 9));
    s.put_file(&key, &source).await.expect("put");
    corrupt(key.clone()).await;
    let dest = dir.path().join("out");
    match s.get_file(&key, &dest).await {
        Err(Error::Internal { .. }) => {}
        other => panic!("a corrupted artifact must be refused as Internal, got {other:?}"),
    }
    let leaked = tokio::fs::read(&dest).await.unwrap_or_default();
    assert!(
        leaked.is_empty(),
        "a refused artifact must not be left at the destination"
    );
}

/// Keys that are empty, absolute, climb out, or hold other characters are refused as
/// `InvalidInput` on `key` by every operation, and nothing is stored.
pub async fn bad_keys_are_refused(s: &dyn BackupStore) {
    let dir = ScratchDir::new("store-keys");
    let source = dir.write("src", b"payload");
    let dest = dir.path().join("out");
    let before = s.list("").await.expect("list before");
    let long = "k".repeat(600);
    for key in [
        "",
        "../x",
        "../../etc/passwd",
        "/abs",
        "/etc/passwd",
        "a/../../b",
        "a/./b",
        "a//b",
        "a/",
        ".",
        "..",
        "a\\b",
        "a b",
        "ü.dump",
        "x;rm -rf",
        "%2e%2e/x",
        long.as_str(),
    ] {
        expect_invalid(s.put_file(key, &source).await, "key");
        expect_invalid(s.get_file(key, &dest).await, "key");
        expect_invalid(s.delete(key).await, "key");
    }
    assert_eq!(s.list("").await.expect("list after"), before);
    assert!(!dest.exists());
    for prefix in ["../", "/", "a/../.."] {
        assert!(
            matches!(s.list(prefix).await, Err(Error::InvalidInput { .. })),
            "list({prefix:?}) must be refused"
        );
    }
}

/// `list` returns exactly the artifacts whose key starts with the prefix (a string prefix,
/// not a directory), with their sizes and checksums.
pub async fn list_by_prefix(s: &dyn BackupStore) {
    let dir = ScratchDir::new("store-list");
    let p = prefix();
    let mut stored = Vec::new();
    for (i, key) in ["t1/a.json", "t1/b.json", "t10/c.json", "t2/a.json"]
        .into_iter()
        .enumerate()
    {
        let source = dir.write(&format!("src{i}"), &pattern(100 + i, i as u8));
        stored.push(
            s.put_file(&format!("{p}/{key}"), &source)
                .await
                .expect("put"),
        );
    }
    let listed = |prefix: String| async move {
        let mut objects = s.list(&prefix).await.expect("list");
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        objects
    };
    assert_eq!(listed(format!("{p}/t1/")).await, stored[0..2].to_vec());
    assert_eq!(listed(format!("{p}/t1")).await, stored[0..3].to_vec());
    assert_eq!(listed(format!("{p}/")).await, stored.clone());
    assert_eq!(listed(p.clone()).await, stored.clone());
    assert_eq!(listed(format!("{p}/t2/a.json")).await, stored[3..].to_vec());
    assert!(listed(format!("{p}/zz")).await.is_empty());
    assert!(listed(format!("{p}/t1/a.json.sha256")).await.is_empty());
    let all = listed(String::new()).await;
    assert!(stored.iter().all(|o| all.contains(o)));
}

/// Deleting removes an artifact from reads and listings; deleting a missing key is `Ok`.
pub async fn delete_missing_is_ok(s: &dyn BackupStore) {
    let dir = ScratchDir::new("store-del");
    let p = prefix();
    s.delete(&format!("{p}/never.dump"))
        .await
        .expect("delete of nothing");
    let key = format!("{p}/doomed.dump");
    let keep = format!("{p}/kept.dump");
    let source = dir.write("src", &pattern(1000, 5));
    s.put_file(&key, &source).await.expect("put");
    s.put_file(&keep, &source).await.expect("put kept");
    s.delete(&key).await.expect("delete");
    expect_not_found(
        s.get_file(&key, &dir.path().join("out")).await,
        Entity::Backup,
    );
    let listed: Vec<String> = s
        .list(&p)
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(listed, vec![keep.clone()]);
    s.delete(&key).await.expect("second delete");
    s.get_file(&keep, &dir.path().join("kept"))
        .await
        .expect("the other artifact is untouched");
}

/// Reading a missing key is `NotFound` (entity `Backup`) and creates no destination file.
pub async fn get_missing_is_not_found(s: &dyn BackupStore) {
    let dir = ScratchDir::new("store-missing");
    let dest = dir.path().join("out");
    expect_not_found(
        s.get_file(&format!("{}/missing.dump", prefix()), &dest)
            .await,
        Entity::Backup,
    );
    assert!(!dest.exists());
    assert!(s.list(&prefix()).await.expect("list").is_empty());
}
