//! `pg_dump` and `pg_restore` as child processes: found on `PATH` or in a configured
//! directory, version-checked against the server, given the admin password through their
//! environment (`PGPASSWORD`), never their command line.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use sqlx::postgres::{PgConnectOptions, PgSslMode};
use tenant_manager_core::{Error, Result, Secret};
use tokio::io::AsyncReadExt;
use tokio::process::Command;

/// Why a client tool cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    /// The program is not there.
    #[error(
        "{tool} not found ({program}): install the PostgreSQL client tools of major version \
         {server_major} or newer, or point PgDumpBackup at their directory"
    )]
    Missing {
        /// `pg_dump` or `pg_restore`.
        tool: &'static str,
        /// The program that was run.
        program: String,
        /// The server's major version.
        server_major: u32,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The program is older than the server, which it cannot dump.
    #[error(
        "{tool} {client_major} is older than the server ({server_major}): install the \
         PostgreSQL {server_major} client tools"
    )]
    TooOld {
        /// `pg_dump` or `pg_restore`.
        tool: &'static str,
        /// Its major version.
        client_major: u32,
        /// The server's.
        server_major: u32,
    },
    /// `--version` printed something unexpected.
    #[error("{tool} printed an unrecognised version: {output}")]
    UnknownVersion {
        /// `pg_dump` or `pg_restore`.
        tool: &'static str,
        /// What it printed.
        output: String,
    },
    /// The program ran and failed.
    #[error("{tool} exited with {status}: {stderr}")]
    Failed {
        /// `pg_dump` or `pg_restore`.
        tool: &'static str,
        /// Exit status.
        status: std::process::ExitStatus,
        /// The end of its standard error.
        stderr: String,
    },
}

/// Where the client tools are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PgTools {
    bin_dir: Option<PathBuf>,
}

/// The connection a tool run uses: arguments and environment, password kept out of argv.
#[derive(Debug, Clone)]
pub(crate) struct ToolConn {
    options: PgConnectOptions,
    password: Option<Secret>,
}

impl ToolConn {
    /// Connects to `database` with `options` and `password`.
    pub(crate) fn new(options: PgConnectOptions, password: Option<Secret>) -> Self {
        Self { options, password }
    }

    fn args(&self, database: &str) -> Vec<OsString> {
        let host: OsString = match self.options.get_socket() {
            Some(dir) => dir.clone().into_os_string(),
            None => self.options.get_host().into(),
        };
        vec![
            "--host".into(),
            host,
            "--port".into(),
            self.options.get_port().to_string().into(),
            "--username".into(),
            self.options.get_username().into(),
            "--dbname".into(),
            database.into(),
            "--no-password".into(),
        ]
    }

    fn ssl_mode(&self) -> &'static str {
        match self.options.get_ssl_mode() {
            PgSslMode::Disable => "disable",
            PgSslMode::Allow => "allow",
            PgSslMode::Prefer => "prefer",
            PgSslMode::Require => "require",
            PgSslMode::VerifyCa => "verify-ca",
            PgSslMode::VerifyFull => "verify-full",
        }
    }
}

/// Longest part of a tool's standard error kept in an error.
const MAX_STDERR: usize = 4000;

impl PgTools {
    /// Tools found on `PATH`.
    pub fn from_path() -> Self {
        Self::default()
    }

    /// Tools in `dir` (for example `/usr/lib/postgresql/16/bin`).
    #[must_use]
    pub fn with_bin_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.bin_dir = Some(dir.into());
        self
    }

    fn program(&self, tool: &str) -> PathBuf {
        match &self.bin_dir {
            Some(dir) => dir.join(tool),
            None => PathBuf::from(tool),
        }
    }

    /// Checks that `tool` runs and is not older than the server.
    pub(crate) async fn check(&self, tool: &'static str, server_major: u32) -> Result<()> {
        let program = self.program(tool);
        let output = Command::new(&program)
            .arg("--version")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|source| {
                unavailable(
                    tool,
                    ToolError::Missing {
                        tool,
                        program: program.display().to_string(),
                        server_major,
                        source,
                    },
                )
            })?;
        let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        let client_major = parse_major(&text).ok_or_else(|| {
            unavailable(
                tool,
                ToolError::UnknownVersion {
                    tool,
                    output: text.chars().take(200).collect(),
                },
            )
        })?;
        if client_major < server_major {
            return Err(unavailable(
                tool,
                ToolError::TooOld {
                    tool,
                    client_major,
                    server_major,
                },
            ));
        }
        Ok(())
    }

    /// Runs `tool` against `database` with `args`; the password goes in `PGPASSWORD`.
    pub(crate) async fn run(
        &self,
        tool: &'static str,
        conn: &ToolConn,
        database: &str,
        args: &[OsString],
    ) -> Result<()> {
        let mut command = self.command(tool, conn, database, args);
        command.stdout(Stdio::null());
        let output = command
            .output()
            .await
            .map_err(|source| self.missing(tool, source))?;
        finish(tool, output.status, &output.stderr)
    }

    /// Runs `tool` like [`PgTools::run`], its standard output copied into `dest` (an existing
    /// file, truncated) by this process. Should this process die, the tool's next write
    /// fails and it exits: no orphan keeps a snapshot open and the tenant's tables locked.
    pub(crate) async fn run_to_file(
        &self,
        tool: &'static str,
        conn: &ToolConn,
        database: &str,
        args: &[OsString],
        dest: &Path,
    ) -> Result<()> {
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(dest)
            .await
            .map_err(|e| Error::unavailable("backup work directory", e))?;
        let mut command = self.command(tool, conn, database, args);
        command.stdout(Stdio::piped());
        let mut child = command
            .spawn()
            .map_err(|source| self.missing(tool, source))?;
        let (Some(mut stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take())
        else {
            return Err(Error::internal(format!("{tool} started without its pipes")));
        };
        let copy = async {
            let copied = tokio::io::copy(&mut stdout, &mut file).await;
            // Closing the pipe stops the tool if the copy failed half-way.
            drop(stdout);
            copied?;
            file.sync_all().await
        };
        let mut err_text = Vec::new();
        let read_err = stderr.read_to_end(&mut err_text);
        let (copied, _) = tokio::join!(copy, read_err);
        let status = child
            .wait()
            .await
            .map_err(|source| self.missing(tool, source))?;
        finish(tool, status, &err_text)?;
        copied.map_err(|e| Error::unavailable("backup work directory", e))
    }

    fn command(
        &self,
        tool: &'static str,
        conn: &ToolConn,
        database: &str,
        args: &[OsString],
    ) -> Command {
        let mut command = Command::new(self.program(tool));
        command
            .args(conn.args(database))
            .args(args)
            .env("PGSSLMODE", conn.ssl_mode())
            .env("PGAPPNAME", "tenant-manager-backup")
            .env_remove("PGPASSWORD")
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(password) = &conn.password {
            command.env("PGPASSWORD", password.expose());
        }
        command
    }

    fn missing(&self, tool: &'static str, source: std::io::Error) -> Error {
        unavailable(
            tool,
            ToolError::Missing {
                tool,
                program: self.program(tool).display().to_string(),
                server_major: 0,
                source,
            },
        )
    }
}

/// `Ok` for a successful exit, else the end of the tool's standard error in an error.
fn finish(tool: &'static str, status: std::process::ExitStatus, stderr: &[u8]) -> Result<()> {
    if status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(stderr);
    Err(Error::internal_with(
        format!("{tool} failed"),
        ToolError::Failed {
            tool,
            status,
            stderr: tenant_manager_core::tail_utf8(&stderr, MAX_STDERR)
                .trim()
                .to_owned(),
        },
    ))
}

fn unavailable(tool: &'static str, err: ToolError) -> Error {
    Error::unavailable(tool, err)
}

/// The major version in `pg_dump (PostgreSQL) 15.4 (Debian ...)` or `pg_dump (PostgreSQL) 9.6.24`.
fn parse_major(text: &str) -> Option<u32> {
    let version = text
        .split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))?;
    // Before version 10 the major version had two parts (9.6); those are all older than 10.
    let digits: String = version.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Major version of the server from `server_version_num` (150004 -> 15, 90624 -> 9).
pub(crate) fn server_major(version_num: i32) -> u32 {
    u32::try_from(version_num / 10_000).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_parsed() {
        assert_eq!(
            parse_major("pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"),
            Some(15)
        );
        assert_eq!(parse_major("pg_dump (PostgreSQL) 9.6.24"), Some(9));
        assert_eq!(parse_major("pg_restore (PostgreSQL) 17beta1"), Some(17));
        assert_eq!(parse_major("nonsense"), None);
        assert_eq!(server_major(150020), 15);
        assert_eq!(server_major(90624), 9);
    }
}
