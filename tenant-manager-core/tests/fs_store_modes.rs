//! The local backup store keeps tenants' data private on disk: the directories it creates are
//! `0700` and every artifact and copy it writes is `0600`, whatever the umask.
#![cfg(unix)]
#![allow(clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tenant_manager_core::BackupStore;
use tenant_manager_core::backup_store::ObjectBackupStore;
use tenant_manager_core::testing::backup_store::{ScratchDir, pattern};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn fs_store_creates_private_directories_and_files() {
    let dir = ScratchDir::new("fs-modes");
    let root = dir.path().join("root");
    let store = ObjectBackupStore::local(&root);
    let source = dir.write("src", &pattern(10_000, 3));
    // A permissive source file does not make a permissive artifact.
    std::fs::set_permissions(&source, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    store
        .put_file("tenant-1/nested/backup-1.dump", &source)
        .await
        .expect("put");
    for d in [
        root.clone(),
        root.join("tenant-1"),
        root.join("tenant-1/nested"),
    ] {
        assert_eq!(mode(&d), 0o700, "{}", d.display());
    }
    let nested = root.join("tenant-1/nested");
    // The old store's sidecar and lock file are gone with its layout; the artifact remains.
    assert_eq!(mode(&nested.join("backup-1.dump")), 0o600);
    let copy = dir.path().join("copy.dump");
    store
        .get_file("tenant-1/nested/backup-1.dump", &copy)
        .await
        .expect("get");
    assert_eq!(mode(&copy), 0o600);
}
