//! A `moto_server` (an S3-compatible server, `python3 -m pip install 'moto[server]'`) of the
//! tests' own on a free loopback port, shared by the tests running at once and killed after
//! the last. Without moto the tests fail: they never skip.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// How long moto may take to answer after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A moto server on loopback, killed on drop.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    port: u16,
    logs: PathBuf,
}

impl Moto {
    /// Starts `moto_server` (or `python3 -m moto.server`) and waits until it answers.
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let logs = std::env::temp_dir().join(format!("tm-moto-{}", crate::unique_suffix()));
        std::fs::create_dir_all(&logs).expect("moto log dir");
        let log = logs.join("moto.log");
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
        let mut moto = Self { child, port, logs };
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
    pub fn request(&self, method: &str, path: &str) -> Option<u16> {
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

    /// Creates a bucket (panics when moto refuses).
    pub fn create_bucket(&self, bucket: &str) {
        let status = self.request("PUT", &format!("/{bucket}"));
        assert_eq!(status, Some(200), "create bucket {bucket}");
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.logs);
    }
}

/// The server the running tests share: started by the first, stopped after the last.
pub fn moto() -> Arc<Moto> {
    static SHARED: Mutex<Weak<Moto>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(moto) = shared.upgrade() {
        return moto;
    }
    let moto = Arc::new(Moto::start());
    *shared = Arc::downgrade(&moto);
    moto
}
