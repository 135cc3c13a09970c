//! The `reference-server` process of a scale run: started with the run's variables (and
//! nothing inherited but `PATH`), its output in a log file, stopped with SIGTERM (then
//! killed) at the end or on drop; and its resident memory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cli::exit::{CliError, Exit};
use crate::http_client::{Auth, HttpClient};

/// A running server.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    child: Option<Child>,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts `binary` with `vars` and waits up to a minute until `/health` answers.
    ///
    /// # Errors
    /// [`CliError`] when it cannot start, exits, or does not answer in time (with the end of
    /// its log).
    pub(crate) async fn start(
        binary: &Path,
        vars: &[(String, String)],
        client: &HttpClient,
        log: PathBuf,
    ) -> Result<Self, CliError> {
        let out = std::fs::File::create(&log)
            .map_err(|e| CliError::new(Exit::Failure, format!("{}: {e}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(|e| CliError::new(Exit::Failure, format!("{}: {e}", log.display())))?;
        let child = Command::new(binary)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| {
                CliError::new(
                    Exit::Failure,
                    format!("cannot start {}: {e}", binary.display()),
                )
            })?;
        let mut server = Self {
            child: Some(child),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = client.get("/health", Auth::None).await
                && r.status.is_success()
            {
                return Ok(server);
            }
            let exited = server
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() >= deadline {
                return Err(CliError::new(
                    Exit::Unavailable,
                    format!(
                        "reference-server did not come up ({}):\n{}",
                        exited.map_or_else(|| "timed out".to_owned(), |s| s.to_string()),
                        server.log_tail(40)
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The process id.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Resident memory (`VmRSS` of `/proc/<pid>/status`), bytes; 0 where unreadable.
    pub(crate) fn rss_bytes(&self) -> u64 {
        self.pid().map_or(0, |pid| status_kib(pid, "VmRSS:") * 1024)
    }

    /// Peak resident memory (`VmHWM`), bytes; 0 where unreadable.
    pub(crate) fn peak_rss_bytes(&self) -> u64 {
        self.pid().map_or(0, |pid| status_kib(pid, "VmHWM:") * 1024)
    }

    /// The last `lines` lines of the server's output.
    pub(crate) fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// SIGTERM, then SIGKILL after 10 s; reaps the process.
    pub(crate) fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A `kB` line of `/proc/<pid>/status`.
fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The 1-minute load average of `/proc/loadavg`.
pub(crate) fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}
