//! A Postgres cluster of the test's own (`initdb` + `pg_ctl`) on a free port under a temp
//! dir: a second server for placement tests, never the shared one on 5432. Stopped and its
//! directory removed on drop. As root, the cluster runs as user `postgres` (`runuser`).
//!
//! [`PrivatePostgres::start_replica`] adds a streaming replica of it (`pg_basebackup -R` into
//! a temp dir, started on another port as a hot standby), itself a `PrivatePostgres` that can
//! be stopped and started again.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A private cluster; trust authentication for `postgres` on 127.0.0.1 only.
#[derive(Debug)]
pub struct PrivatePostgres {
    port: u16,
    dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
}

impl PrivatePostgres {
    /// Runs `initdb` in a fresh temp dir and starts the cluster on a free port (waits until it
    /// accepts connections). Panics when the Postgres server binaries are not installed.
    pub fn start() -> Self {
        let bin = server_bin_dir();
        let dir = std::env::temp_dir().join(format!("tm-pg-{}", crate::unique_suffix()));
        std::fs::create_dir_all(&dir).expect("private postgres dir");
        let as_postgres = running_as_root();
        let server = Self {
            port: free_port(),
            dir,
            bin,
            as_postgres,
        };
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&server.dir)
                .status()
                .expect("chown");
            assert!(status.success(), "chown of the private cluster's dir");
        }
        let data = server.data();
        server.run(
            "initdb",
            &[
                "-D",
                path(&data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        server.pg_start();
        server
    }

    /// A streaming replica of this cluster: a replication login (`replicator`, created once),
    /// `pg_basebackup -R` into a fresh temp dir, started as a hot standby on a free port (waits
    /// until it accepts connections). Stopped and removed on drop, like any private cluster.
    /// Panics when a step fails.
    pub fn start_replica(&self) -> PrivatePostgres {
        // wal_level is `replica` by default; `initdb -A trust` lets replication connections in
        // from 127.0.0.1. A login of its own with REPLICATION (and nothing else) streams.
        self.run(
            "psql",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'replicator') \
                 THEN CREATE ROLE replicator LOGIN REPLICATION; END IF; END $$",
            ],
        );
        let dir = std::env::temp_dir().join(format!("tm-pg-replica-{}", crate::unique_suffix()));
        std::fs::create_dir_all(&dir).expect("private replica dir");
        let replica = PrivatePostgres {
            port: free_port(),
            dir,
            bin: self.bin.clone(),
            as_postgres: self.as_postgres,
        };
        if replica.as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&replica.dir)
                .status()
                .expect("chown");
            assert!(status.success(), "chown of the replica's dir");
        }
        replica.run(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "replicator",
                "-D",
                path(&replica.data()),
                "-R",
                "-X",
                "stream",
                "--no-sync",
            ],
        );
        replica.pg_start();
        replica
    }

    /// Stops the cluster (fast shutdown); [`start_again`](Self::start_again) brings it back.
    pub fn stop(&self) {
        self.run(
            "pg_ctl",
            &["-D", path(&self.data()), "-m", "fast", "-w", "stop"],
        );
    }

    /// Starts a stopped cluster again, on the same port.
    pub fn start_again(&self) {
        self.pg_start();
    }

    /// `pg_ctl start` on this cluster's port and socket dir; waits until it accepts connections.
    fn pg_start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=40 -c fsync=off",
            self.port,
            path(&self.dir)
        );
        let log = self.dir.join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                path(&self.data()),
                "-o",
                &options,
                "-l",
                path(&log),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`: the superuser on the maintenance db.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `postgres://postgres@127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Runs a server binary (as `postgres` when we are root); panics on failure.
    fn run(&self, program: &str, args: &[&str]) {
        let exe = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(&exe);
            cmd
        } else {
            Command::new(&exe)
        };
        let out = cmd
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{program} could not run: {e}"));
        assert!(
            out.status.success(),
            "{program} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.data();
        let exe = self.bin.join("pg_ctl");
        let mut cmd = if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(&exe);
            cmd
        } else {
            Command::new(&exe)
        };
        let _ = cmd
            .args(["-D", path(&data), "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The directory of `initdb` and `pg_ctl`: `PG_BIN_DIR`, else the newest
/// `/usr/lib/postgresql/<version>/bin`, else `pg_config --bindir`.
fn server_bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("PG_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    let out = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .expect("the Postgres server binaries (initdb, pg_ctl) must be installed");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
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

fn path(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}
