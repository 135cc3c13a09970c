//! A `pgbouncer` of the test's own on a free port, in front of a Postgres server, with its ini,
//! user list, pid file and log in a temp dir; never a system pgbouncer service. Stopped (by the
//! pid it wrote) and its directory removed on drop. As root it runs as user `postgres`
//! (`runuser`): pgbouncer refuses to run as root.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// `pool_mode` of a [`PrivatePgBouncer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolMode {
    /// A server connection per client connection, for the client's whole session.
    Session,
    /// A server connection per transaction: clients share server connections between
    /// transactions.
    Transaction,
}

impl PoolMode {
    fn as_str(self) -> &'static str {
        match self {
            PoolMode::Session => "session",
            PoolMode::Transaction => "transaction",
        }
    }
}

/// A private pgbouncer; `auth_type = trust` for the listed users (the server behind it decides).
#[derive(Debug)]
pub struct PrivatePgBouncer {
    port: u16,
    dir: PathBuf,
}

impl PrivatePgBouncer {
    /// Starts pgbouncer on a free port of 127.0.0.1 in front of `upstream_host:upstream_port`
    /// (every database), in `mode`, with at most `pool_size` server connections per
    /// database and user, admitting `users` (trust). Waits until it accepts connections.
    /// Panics when `pgbouncer` is not installed (`apt-get install pgbouncer`).
    pub fn start(
        upstream_host: &str,
        upstream_port: u16,
        mode: PoolMode,
        pool_size: u32,
        users: &[&str],
    ) -> Self {
        let dir = std::env::temp_dir().join(format!("tm-pgbouncer-{}", crate::unique_suffix()));
        std::fs::create_dir_all(&dir).expect("pgbouncer dir");
        let port = free_port();
        let userlist: String = users.iter().map(|u| format!("\"{u}\" \"\"\n")).collect();
        std::fs::write(dir.join("userlist.txt"), userlist).expect("userlist");
        let ini = format!(
            "[databases]\n\
             * = host={upstream_host} port={upstream_port}\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = trust\n\
             auth_file = {dir}/userlist.txt\n\
             pool_mode = {mode}\n\
             default_pool_size = {pool_size}\n\
             max_client_conn = 200\n\
             server_reset_query = DISCARD ALL\n\
             ignore_startup_parameters = extra_float_digits\n\
             pidfile = {dir}/pgbouncer.pid\n\
             logfile = {dir}/pgbouncer.log\n",
            dir = dir.display(),
            mode = mode.as_str(),
        );
        let ini_path = dir.join("pgbouncer.ini");
        std::fs::write(&ini_path, ini).expect("pgbouncer.ini");
        let as_postgres = running_as_root();
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .expect("chown");
            assert!(status.success(), "chown of the pgbouncer dir");
        }
        let mut cmd = if as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--", "pgbouncer"]);
            cmd
        } else {
            Command::new("pgbouncer")
        };
        let out = cmd
            .arg("-d")
            .arg(&ini_path)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("pgbouncer could not run (apt-get install pgbouncer): {e}"));
        assert!(
            out.status.success(),
            "pgbouncer failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let bouncer = Self { port, dir };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return bouncer;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("pgbouncer never listened: {}", bouncer.log());
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://<user>@127.0.0.1:<port>/<database>` through this pgbouncer.
    pub fn url(&self, user: &str, database: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/{database}", self.port)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PrivatePgBouncer {
    fn drop(&mut self) {
        let pid = std::fs::read_to_string(self.dir.join("pgbouncer.pid")).unwrap_or_default();
        if let Ok(pid) = pid.trim().parse::<u32>() {
            let _ = Command::new("kill")
                .arg(pid.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            for _ in 0..100 {
                if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}
