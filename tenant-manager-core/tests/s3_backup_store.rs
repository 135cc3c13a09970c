//! The object_store backup store in an S3-compatible bucket, against the backup store suite.
//!
//! The test starts its own S3 server, moto (`python3 -m pip install 'moto[server]'`), on a
//! free loopback port, makes one bucket per test, and stops the server when the last test
//! using it ends. Without moto the tests fail: they never skip.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;

use tenant_manager_test_support::moto::{Moto, moto};

use tenant_manager_core::BackupStore;
use tenant_manager_core::backup_store::testing::corrupt_object;
use tenant_manager_core::backup_store::{ObjectBackupStore, S3Config};
use tenant_manager_core::testing::Fixture;
use tenant_manager_core::testing::backup_store::ScratchDir;
use tenant_manager_core::testing::registry::random_hex;

/// A store in a fresh bucket, and the server it needs.
#[derive(Debug)]
struct S3Guard {
    store: Arc<ObjectBackupStore>,
    _moto: Arc<Moto>,
}

fn bucket_store() -> (Arc<ObjectBackupStore>, S3Guard) {
    let moto = tokio::task::block_in_place(moto);
    let bucket = format!("tm-{}", random_hex(12));
    moto.create_bucket(&bucket);
    let config = S3Config::new(bucket, "test-key-id", "test-secret")
        .with_endpoint(moto.endpoint())
        .with_allow_http(true);
    let store = Arc::new(ObjectBackupStore::s3(&config).expect("s3 store"));
    (store.clone(), S3Guard { store, _moto: moto })
}

async fn factory() -> Fixture<dyn BackupStore, S3Guard> {
    let (store, guard) = bucket_store();
    let store: Arc<dyn BackupStore> = store;
    Fixture::with_guard(store, guard)
}

async fn corrupt(fixture: &Fixture<dyn BackupStore, S3Guard>, key: &str) {
    corrupt_object(fixture.guard().store.object_store().as_ref(), key)
        .await
        .expect("corrupt the artifact");
}

tenant_manager_core::backup_store_conformance!(factory, corrupt);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_artifact_goes_up_in_parts_and_reads_back() {
    let (store, _guard) = bucket_store();
    let dir = ScratchDir::new("s3-large");
    // Past the single-request size: a multipart upload of several parts.
    let content = tenant_manager_core::testing::backup_store::pattern(20 * 1024 * 1024 + 3, 7);
    let source = dir.write("big", &content);
    let put = store.put_file("t/big.dump", &source).await.expect("put");
    assert_eq!(put.size_bytes, content.len() as u64);
    let dest = dir.path().join("out");
    let got = store.get_file("t/big.dump", &dest).await.expect("get");
    assert_eq!(got, put);
    assert!(std::fs::read(&dest).expect("read") == content);
    assert_eq!(store.list("t/").await.expect("list"), vec![put]);
}

#[test]
fn the_config_debug_hides_the_credentials() {
    let config = S3Config::new("bucket", "AKIDSECRETID", "very-secret-key")
        .with_session_token("token-secret")
        .with_endpoint("http://127.0.0.1:9000");
    let shown = format!("{config:?}");
    for secret in ["AKIDSECRETID", "very-secret-key", "token-secret"] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert!(shown.contains("bucket"));
}
