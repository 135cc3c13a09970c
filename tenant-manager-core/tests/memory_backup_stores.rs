//! What the backup store suite cannot see: the in-memory store's byte budget, and the local
//! store's layout on disk.

#![allow(clippy::expect_used)]

mod support;

use std::sync::Arc;

use tenant_manager_core::backup_store::ObjectBackupStore;
use tenant_manager_core::memory::{InMemoryBackup, InMemoryTenantData};
use tenant_manager_core::testing::backup_store::{ScratchDir, pattern};
use tenant_manager_core::testing::registry::{expect_invalid, expect_not_found};
use tenant_manager_core::{Backup, BackupStore, Entity, Error, Isolation};

#[tokio::test]
async fn memory_store_refuses_writes_past_its_budget() {
    let dir = ScratchDir::new("mem-budget");
    let store = ObjectBackupStore::in_memory().with_max_total_bytes(1000);
    assert_eq!(store.max_total_bytes(), Some(1000));
    let s600 = dir.write("600", &pattern(600, 1));
    let s300 = dir.write("300", &pattern(300, 2));
    let s500 = dir.write("500", &pattern(500, 3));
    let s1001 = dir.write("1001", &pattern(1001, 4));

    match store.put_file("big", &s1001).await {
        Err(Error::QuotaExceeded { quota, limit, .. }) => {
            assert_eq!(quota, "backup_store_bytes");
            assert_eq!(limit, 1000);
        }
        other => panic!("expected QuotaExceeded, got {other:?}"),
    }
    store.put_file("a", &s600).await.expect("600 fits");
    store.put_file("b", &s300).await.expect("900 fits");
    assert_eq!(store.used_bytes(), 900);
    assert!(matches!(
        store.put_file("c", &s500).await,
        Err(Error::QuotaExceeded { .. })
    ));
    assert_eq!(store.used_bytes(), 900);
    expect_not_found(
        store.get_file("c", &dir.path().join("c")).await,
        Entity::Backup,
    );
    // Overwriting counts the difference only.
    store.put_file("a", &s500).await.expect("shrink a");
    assert_eq!(store.used_bytes(), 800);
    assert!(matches!(
        store.put_file("b", &s600).await,
        Err(Error::QuotaExceeded { .. })
    ));
    assert_eq!(store.used_bytes(), 800);
    store
        .put_file("b", &s500)
        .await
        .expect("grow b to the limit");
    assert_eq!(store.used_bytes(), 1000);
    store.put_file("b", &s300).await.expect("shrink b");
    // Deleting frees room.
    store.delete("a").await.expect("delete");
    assert_eq!(store.used_bytes(), 300);
    store.put_file("c", &s600).await.expect("fits again");
    assert_eq!(store.used_bytes(), 900);
    let keys: Vec<String> = store
        .list("")
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(keys, ["b", "c"]);
}

#[tokio::test]
async fn a_full_memory_store_fails_a_backup_cleanly() {
    let (data, _provisioner, tenant) =
        support::provisioned(InMemoryTenantData::new(), Isolation::Schema).await;
    data.insert(
        tenant.id,
        "companies",
        "c1",
        serde_json::json!({"name": "x".repeat(200)}),
    )
    .expect("insert");
    let store = Arc::new(ObjectBackupStore::in_memory().with_max_total_bytes(100));
    let backup = InMemoryBackup::new(Arc::clone(&data), store.clone());
    assert!(matches!(
        backup.backup(&tenant).await,
        Err(Error::QuotaExceeded { .. })
    ));
    assert!(backup.list(tenant.id).await.expect("list").is_empty());
    assert_eq!(store.used_bytes(), 0);
}

/// The layout replaced the old store's `.sha256` sidecar and `.lock` file: one file per
/// artifact, its content followed by a `tm-sha256:<hex>` trailer.
#[tokio::test]
async fn fs_store_keeps_one_file_per_artifact_with_a_checksum_trailer_and_nothing_else() {
    let dir = ScratchDir::new("fs-layout");
    let root = dir.path().join("root");
    let store = ObjectBackupStore::local(&root);
    assert_eq!(store.root(), Some(root.as_path()));
    let content = pattern(70_000, 7);
    let source = dir.write("src", &content);
    let object = store
        .put_file("tenant-1/backup-1.dump", &source)
        .await
        .expect("put");
    let artifact = root.join("tenant-1").join("backup-1.dump");
    let mut expected = content.clone();
    expected.extend_from_slice(format!("tm-sha256:{}\n", object.sha256).as_bytes());
    assert_eq!(std::fs::read(&artifact).expect("artifact"), expected);
    // Only the artifact: no temporary file is left.
    let mut names: Vec<String> = std::fs::read_dir(root.join("tenant-1"))
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["backup-1.dump"]);
    // Nothing was written beside the root.
    let mut top: Vec<String> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(top, ["root", "src"]);
}

/// The old store reserved dot segments and `.sha256` names for its own files; this layout has
/// none, so those keys are ordinary artifacts now. A missing source is still refused, and a
/// file put in the root by hand (no checksum trailer) is neither listed nor read.
#[tokio::test]
async fn fs_store_refuses_missing_sources_and_files_it_did_not_write() {
    let dir = ScratchDir::new("fs-refusals");
    let root = dir.path().join("root");
    let store = ObjectBackupStore::local(&root);
    let source = dir.write("src", b"payload");
    for key in ["a/.hidden", ".lock", "a/b.dump.sha256", ".x/y"] {
        store.put_file(key, &source).await.expect("put");
        let got = store
            .get_file(key, &dir.path().join("o"))
            .await
            .expect("get");
        assert_eq!(got.size_bytes, 7);
        store.delete(key).await.expect("delete");
    }
    expect_invalid(
        store
            .put_file("a/b.dump", &dir.path().join("missing"))
            .await,
        "source",
    );
    assert!(store.list("").await.expect("list").is_empty());

    // A file without a trailer is not listed, and reading it is an internal error that
    // leaves nothing at the destination.
    std::fs::create_dir_all(root.join("t")).expect("dir");
    std::fs::write(root.join("t").join("orphan.dump"), b"x").expect("orphan");
    std::fs::write(root.join("t").join("garbage.dump"), [b'g'; 200]).expect("garbage");
    assert!(store.list("").await.expect("list").is_empty());
    for key in ["t/orphan.dump", "t/garbage.dump"] {
        let out = dir.path().join("o2");
        assert!(matches!(
            store.get_file(key, &out).await,
            Err(Error::Internal { .. })
        ));
        assert!(!out.exists());
    }
    expect_not_found(
        store
            .get_file("t/missing.dump", &dir.path().join("o"))
            .await,
        Entity::Backup,
    );
    // Deleting removes the file.
    store.delete("t/orphan.dump").await.expect("delete");
    assert!(!root.join("t").join("orphan.dump").exists());
}

#[cfg(unix)]
#[tokio::test]
async fn fs_store_does_not_follow_symlinks_out_of_its_root() {
    let dir = ScratchDir::new("fs-symlink");
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&root).expect("root");
    std::fs::create_dir_all(&outside).expect("outside");
    std::fs::write(outside.join("secret.dump"), b"secret").expect("secret");
    std::os::unix::fs::symlink(&outside, root.join("link")).expect("symlink");
    let store = ObjectBackupStore::local(&root);
    assert!(store.list("").await.expect("list").is_empty());
    expect_not_found(
        store
            .get_file("link/secret.dump", &dir.path().join("o"))
            .await,
        Entity::Backup,
    );
    let source = dir.write("src", b"payload");
    expect_invalid(store.put_file("link/new.dump", &source).await, "key");
    store
        .delete("link/secret.dump")
        .await
        .expect("delete is a no-op");
    assert!(outside.join("secret.dump").exists());
    assert!(!outside.join("new.dump").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fs_store_concurrent_writers_of_one_key_leave_a_matching_checksum() {
    let dir = ScratchDir::new("fs-writers");
    let store = Arc::new(ObjectBackupStore::local(dir.path().join("root")));
    let sources: Vec<_> = (0..6)
        .map(|i| dir.write(&format!("src{i}"), &pattern(50_000 + i * 10, i as u8)))
        .collect();
    let writers: Vec<_> = sources
        .iter()
        .cloned()
        .map(|source| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for _ in 0..10 {
                    store.put_file("k/shared.dump", &source).await.expect("put");
                }
            })
        })
        .collect();
    for w in writers {
        w.await.expect("writer");
    }
    let got = store
        .get_file("k/shared.dump", &dir.path().join("out"))
        .await
        .expect("a consistent artifact");
    let listed = store.list("k/").await.expect("list");
    assert_eq!(listed, vec![got]);
}
