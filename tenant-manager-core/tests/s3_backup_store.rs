//! The object_store backup store in an S3-compatible bucket, against the backup store suite.
//!
//! The test starts its own S3 server, moto (`python3 -m pip install 'moto[server]'`), on a
//! free loopback port, makes one bucket per test, and stops the server when the last test
//! using it ends. Without moto the tests fail: they never skip.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tenant_manager_core::BackupStore;
use tenant_manager_core::backup_store::testing::corrupt_object;
use tenant_manager_core::backup_store::{ObjectBackupStore, S3Config};
use tenant_manager_core::testing::Fixture;
use tenant_manager_core::testing::backup_store::ScratchDir;
use tenant_manager_core::testing::registry::random_hex;

/// How long moto may take to answer after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A moto server on loopback, killed on drop.
#[derive(Debug)]
struct Moto {
    child: Child,
    port: u16,
    _logs: ScratchDir,
}

impl Moto {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let logs = ScratchDir::new("moto");
        let log = logs.path().join("moto.log");
        let spawn = |program: &str, args: &[&str]| {
            let file = std::fs::File::create(&log).expect("moto log");
            Command::new(program)
                .args(args)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(file.try_clone().expect("log handle"))
                .stderr(file)
                .spawn()
        };
        let child = spawn("moto_server", &[])
            .or_else(|_| spawn("python3", &["-m", "moto.server"]))
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start moto ({e}): install it with `python3 -m pip install 'moto[server]'`"
                )
            });
        let mut moto = Self {
            child,
            port,
            _logs: logs,
        };
        let started = Instant::now();
        loop {
            if let Some(status) = moto.child.try_wait().expect("moto status") {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                panic!(
                    "moto exited ({status}) before answering; install it with \
                     `python3 -m pip install 'moto[server]'`:\n{log}"
                );
            }
            if moto.request("GET", "/").is_some_and(|status| status == 200) {
                return moto;
            }
            assert!(
                started.elapsed() < START_TIMEOUT,
                "moto did not answer on port {port} within {START_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends a bodyless request and returns the response status.
    fn request(&self, method: &str, path: &str) -> Option<u16> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n",
            self.port
        );
        stream.write_all(request.as_bytes()).ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        response.split_whitespace().nth(1)?.parse().ok()
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server the running tests share: started by the first, stopped after the last.
fn moto() -> Arc<Moto> {
    static SHARED: Mutex<Weak<Moto>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(moto) = shared.upgrade() {
        return moto;
    }
    let moto = Arc::new(Moto::start());
    *shared = Arc::downgrade(&moto);
    moto
}

/// A store in a fresh bucket, and the server it needs.
#[derive(Debug)]
struct S3Guard {
    store: Arc<ObjectBackupStore>,
    _moto: Arc<Moto>,
}

fn bucket_store() -> (Arc<ObjectBackupStore>, S3Guard) {
    let moto = tokio::task::block_in_place(moto);
    let bucket = format!("tm-{}", random_hex(12));
    let status = moto.request("PUT", &format!("/{bucket}"));
    assert_eq!(status, Some(200), "create bucket {bucket}");
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
