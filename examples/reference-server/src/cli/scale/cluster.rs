//! The scale run's Postgres servers: a second cluster of its own (`initdb` + `pg_ctl` on a
//! free port under a temp dir, stopped and removed at the end), and the clean-up of what the
//! run created on the first, shared server (every database and role whose name carries the
//! run's tag).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sqlx::{Connection, PgConnection};

use crate::cli::exit::{CliError, Exit};

fn failed(what: &str, e: impl std::fmt::Display) -> CliError {
    CliError::new(Exit::Failure, format!("{what}: {e}"))
}

/// A Postgres cluster of the run's own on 127.0.0.1 (trust authentication for `postgres`).
/// Stopped and its directory removed on [`stop`](Self::stop) or drop.
#[derive(Debug)]
pub(crate) struct Cluster {
    port: u16,
    dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
    stopped: bool,
}

impl Cluster {
    /// Runs `initdb` in a fresh dir under `parent` and starts the cluster on a free port with
    /// room for `max_connections`.
    ///
    /// # Errors
    /// [`CliError`] when the server binaries are missing or `initdb` / `pg_ctl` fail.
    pub(crate) fn start(parent: &Path, max_connections: u32) -> Result<Self, CliError> {
        let dir = parent.join("pg2");
        std::fs::create_dir_all(&dir).map_err(|e| failed("second cluster dir", e))?;
        let as_postgres = running_as_root();
        let mut cluster = Self {
            port: free_port()?,
            dir,
            bin: server_bin_dir(),
            as_postgres,
            stopped: true,
        };
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(parent)
                .status()
                .map_err(|e| failed("chown", e))?;
            if !status.success() {
                return Err(failed("chown of the second cluster's dir", status));
            }
        }
        let data = cluster.dir.join("data");
        let log = cluster.dir.join("server.log");
        cluster.run(
            "initdb",
            &[
                "-D",
                &data.to_string_lossy(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections={max_connections}",
            cluster.port,
            cluster.dir.display()
        );
        cluster.stopped = false;
        cluster.run(
            "pg_ctl",
            &[
                "-D",
                &data.to_string_lossy(),
                "-o",
                &options,
                "-l",
                &log.to_string_lossy(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        )?;
        Ok(cluster)
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub(crate) fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the cluster (immediate shutdown) and removes its directory.
    pub(crate) fn stop(&mut self) {
        if !self.stopped {
            let data = self.dir.join("data");
            let _ = self.command("pg_ctl").map(|mut c| {
                c.args([
                    "-D",
                    &data.to_string_lossy(),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
            });
            self.stopped = true;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    fn command(&self, program: &str) -> Result<Command, CliError> {
        let exe = self.bin.join(program);
        Ok(if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(exe);
            cmd
        } else {
            Command::new(exe)
        })
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<(), CliError> {
        let out = self
            .command(program)?
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| failed(program, e))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(CliError::new(
                Exit::Failure,
                format!(
                    "{program} failed: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            ))
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Drops every database (forcing its sessions out) and then every role whose name contains
/// `tag` on the server of `admin_url`; returns how many of each it dropped.
///
/// # Errors
/// [`CliError`] when the server cannot be reached or a drop fails.
pub(crate) async fn drop_tagged(admin_url: &str, tag: &str) -> Result<(usize, usize), CliError> {
    let mut conn = PgConnection::connect(admin_url)
        .await
        .map_err(|e| failed("clean-up connection", e))?;
    let databases: Vec<String> =
        sqlx::query_scalar("SELECT datname::text FROM pg_database WHERE strpos(datname, $1) > 0")
            .bind(tag)
            .fetch_all(&mut conn)
            .await
            .map_err(|e| failed("list the run's databases", e))?;
    for database in &databases {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote(database)
        )))
        .execute(&mut conn)
        .await
        .map_err(|e| failed(&format!("drop database {database}"), e))?;
    }
    let roles: Vec<String> =
        sqlx::query_scalar("SELECT rolname::text FROM pg_roles WHERE strpos(rolname, $1) > 0")
            .bind(tag)
            .fetch_all(&mut conn)
            .await
            .map_err(|e| failed("list the run's roles", e))?;
    for batch in roles.chunks(500) {
        let names: Vec<String> = batch.iter().map(|r| quote(r)).collect();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP ROLE IF EXISTS {}",
            names.join(", ")
        )))
        .execute(&mut conn)
        .await
        .map_err(|e| failed("drop the run's roles", e))?;
    }
    let _ = conn.close().await;
    Ok((databases.len(), roles.len()))
}

/// `"name"` with inner quotes doubled.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A port on 127.0.0.1 that was free a moment ago.
pub(crate) fn free_port() -> Result<u16, CliError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| failed("free port", e))
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `PG_BIN_DIR`, else the newest `/usr/lib/postgresql/<version>/bin`, else the `PATH`.
fn server_bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("PG_BIN_DIR") {
        return PathBuf::from(dir);
    }
    std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").exists())
        .max_by_key(|(v, _)| *v)
        .map(|(_, bin)| bin)
        .unwrap_or_default()
}
