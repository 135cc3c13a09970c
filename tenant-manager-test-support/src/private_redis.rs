//! A `redis-server` of the test's own on a free port, to kill and restart without touching
//! the shared server other tests use.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A private server. Killed (and its directory removed) on drop.
#[derive(Debug)]
pub struct PrivateRedis {
    port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
}

impl PrivateRedis {
    /// Starts `redis-server` on a free port, without persistence, and waits until it answers.
    pub fn start() -> Self {
        Self::start_with(Vec::new())
    }

    /// Starts it with extra command-line options (`--tls-port`, ...), on a free port.
    pub fn start_with(extra: Vec<String>) -> Self {
        let dir = std::env::temp_dir().join(format!("tm-redis-{}", crate::unique_suffix()));
        std::fs::create_dir_all(&dir).expect("private redis dir");
        let mut server = Self {
            port: free_port(),
            dir,
            extra,
            child: None,
        };
        server.restart();
        server
    }

    /// The port of the plain TCP listener.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The working directory (for certificates and the like).
    pub fn dir(&self) -> &PathBuf {
        &self.dir
    }

    /// Kills the server abruptly (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and waits until it answers.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            // Run in the foreground as our child, so the test kills exactly this process.
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed to run the tests that restart Redis");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let client = redis::Client::open(self.url()).expect("client");
        loop {
            let ready = client
                .get_connection_with_timeout(Duration::from_millis(200))
                .and_then(|mut conn| redis::cmd("PING").query::<String>(&mut conn));
            if ready.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "private redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A local port where nothing listens (bound, read, released).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
