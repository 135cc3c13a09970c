//! Starts the real `reference-server` binary for end-to-end tests, and talks to it.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reference_server::http_client::{Auth, HttpClient, HttpResponse};
use serde_json::{Value, json};

pub mod isolation;
pub mod moves;
pub mod pg;

/// A 43-character admin key used by every test server.
pub const ADMIN_KEY: &str = "test-admin-key-0123456789abcdefghijklmnopqrstu";
/// A 43-character token key used by every test server.
pub const JWT_SECRET: &str = "test-jwt-secret-0123456789abcdefghijklmnopqrs";

/// A running server process; stopped with SIGTERM (then killed) on drop.
pub struct Server {
    child: Option<Child>,
    pub client: HttpClient,
    pub base_url: String,
    pub metrics_url: Option<String>,
    logs: mpsc::Receiver<String>,
    history: Vec<String>,
    first_log_line: String,
}

fn base_env() -> Vec<(String, String)> {
    [
        ("APP_ENV", "test"),
        ("BIND_ADDRESS", "127.0.0.1"),
        ("PORT", "0"),
        ("LOG_FORMAT", "json"),
        ("LOG_LEVEL", "info"),
        ("JWT_SECRET", JWT_SECRET),
        ("SUPER_ADMIN_KEY", ADMIN_KEY),
        ("PASSWORD_HASHING", "fast"),
        ("RATE_LIMIT_MAX_REQUESTS", "100000"),
        ("SHUTDOWN_TIMEOUT_MS", "5000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// The `reference-server` command with the test environment (and nothing inherited but PATH).
pub fn command(overrides: &[(&str, &str)]) -> Command {
    let mut env = base_env();
    for (k, v) in overrides {
        env.retain(|(key, _)| key != k);
        if !v.is_empty() {
            env.push(((*k).to_owned(), (*v).to_owned()));
        }
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reference-server"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        .current_dir(std::env::temp_dir());
    cmd
}

impl Server {
    /// Starts a server with the test environment plus `overrides` (an empty value unsets).
    pub fn start(overrides: &[(&str, &str)]) -> Self {
        let mut child = command(overrides)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn reference-server");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        let tx_err = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx_err.send(format!("stderr: {line}"));
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut api = None;
        let mut metrics = None;
        let mut first_log_line = String::new();
        let mut seen = Vec::new();
        while Instant::now() < deadline && api.is_none() {
            let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) else {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "server exited with {status} before listening:\n{}",
                        seen.join("\n")
                    );
                }
                continue;
            };
            if first_log_line.is_empty() && !line.starts_with("stderr:") {
                first_log_line.clone_from(&line);
            }
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                match v["message"].as_str() {
                    Some("serving the API") => api = v["addr"].as_str().map(str::to_owned),
                    Some("serving /metrics") => metrics = v["addr"].as_str().map(str::to_owned),
                    _ => {}
                }
            }
            seen.push(line);
        }
        let api =
            api.unwrap_or_else(|| panic!("server did not listen in time:\n{}", seen.join("\n")));
        // The metrics listener is announced right after the API's.
        if overrides
            .iter()
            .any(|(k, v)| *k == "METRICS_PORT" && !v.is_empty())
        {
            while metrics.is_none() && Instant::now() < deadline {
                if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
                    if let Ok(v) = serde_json::from_str::<Value>(&line)
                        && v["message"] == "serving /metrics"
                    {
                        metrics = v["addr"].as_str().map(str::to_owned);
                    }
                    seen.push(line);
                }
            }
        }
        let base_url = format!("http://{api}");
        Self {
            child: Some(child),
            client: HttpClient::new(&base_url).expect("client"),
            base_url,
            metrics_url: metrics.map(|m| format!("http://{m}")),
            logs: rx,
            history: seen,
            first_log_line,
        }
    }

    /// The process id of the running server.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The first line the server logged.
    pub fn first_log_line(&self) -> &str {
        &self.first_log_line
    }

    /// Every log line (stdout, and stderr prefixed `stderr: `) so far, waiting up to
    /// `settle` for more (or until the process's output closes).
    pub fn logs(&mut self, settle: Duration) -> Vec<String> {
        let deadline = Instant::now() + settle;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.logs.recv_timeout(left.max(Duration::from_millis(1))) {
                Ok(line) => self.history.push(line),
                Err(_) => break,
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        self.history.clone()
    }

    /// Sends SIGTERM and waits up to `timeout` for the process to exit.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Kills the process with SIGKILL, as a crash would (no shutdown runs), and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub async fn get(&self, path: &str, auth: Auth<'_>) -> HttpResponse {
        self.client.get(path, auth).await.expect("GET")
    }

    /// GETs `path` and reads the answer as JSON, whatever its status.
    pub async fn get_json(&self, path: &str, auth: Auth<'_>) -> Value {
        self.get(path, auth).await.json().expect("json")
    }

    pub async fn post(&self, path: &str, auth: Auth<'_>, body: &Value) -> HttpResponse {
        self.client.post(path, auth, body).await.expect("POST")
    }

    pub async fn send(
        &self,
        method: http::Method,
        path: &str,
        auth: Auth<'_>,
        body: Option<&Value>,
    ) -> HttpResponse {
        self.client
            .send(method, path, auth, body)
            .await
            .expect("request")
    }

    /// Posts `body` to the registration route, whatever the answer.
    pub async fn post_registration(&self, body: &Value) -> HttpResponse {
        self.post("/api/auth/register-organization", Auth::None, body)
            .await
    }

    /// Posts a login with `email` and `password`, whatever the answer.
    pub async fn login(&self, email: &str, password: &str) -> HttpResponse {
        self.post(
            "/api/auth/login",
            Auth::None,
            &json!({"email": email, "password": password}),
        )
        .await
    }

    /// Registers an organisation and returns (tenant id, access token, the whole answer).
    pub async fn register(&self, name: &str, email: &str) -> (String, String, Value) {
        self.register_with(
            &json!({"organization_name": name, "admin_email": email, "admin_password": "Test123!"}),
        )
        .await
    }

    /// Registers an organisation described by `body` (which may set `slug` and `isolation`)
    /// and returns (tenant id, access token, the whole answer).
    pub async fn register_with(&self, body: &Value) -> (String, String, Value) {
        let r = self.post_registration(body).await;
        assert!(
            r.status.is_success(),
            "register {body}: {} {}",
            r.status,
            text(&r)
        );
        let body: Value = r.json().expect("json");
        let id = body["tenant"]["id"].as_str().expect("tenant id").to_owned();
        let token = body["access_token"].as_str().expect("token").to_owned();
        (id, token, body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.terminate(Duration::from_secs(10));
    }
}

/// The body as text, for assertion messages.
pub fn text(r: &HttpResponse) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// Asserts an error answer: its status and its JSON `code` (the body is shown on failure).
pub fn assert_error(r: &HttpResponse, status: http::StatusCode, expected: &str) {
    assert_eq!(
        (r.status, code(r)),
        (status, expected.to_owned()),
        "{}",
        text(r)
    );
}

/// The error code of an error answer.
pub fn code(r: &HttpResponse) -> String {
    r.json::<Value>()
        .map(|v| v["error"]["code"].as_str().unwrap_or("").to_owned())
        .unwrap_or_default()
}

/// The series the deployment guide's dashboards read.
pub const GUIDE_SERIES: [&str; 6] = [
    "active_tenants",
    "api_requests_total",
    "api_response_time_seconds",
    "database_connections_total",
    "database_connections",
    "cache_hit_rate",
];

/// Asserts that the Prometheus text `metrics` describes every series of [`GUIDE_SERIES`].
pub fn assert_guide_series(metrics: &str) {
    for series in GUIDE_SERIES {
        assert!(
            metrics.contains(&format!("# HELP {series} ")),
            "{series} missing:\n{metrics}"
        );
    }
}

/// Asserts a `429 quota_exceeded` answer with `Retry-After` and the `RateLimit-*` headers of
/// a spent `limit`.
pub fn assert_rate_limited(r: &HttpResponse, limit: &str) {
    assert_eq!(r.status, http::StatusCode::TOO_MANY_REQUESTS, "{}", text(r));
    assert_eq!(code(r), "quota_exceeded");
    assert!(
        r.header("retry-after")
            .is_some_and(|v| v.parse::<u64>().is_ok_and(|s| s >= 1)),
        "retry-after: {:?}",
        r.header("retry-after")
    );
    assert_eq!(r.header("ratelimit-limit"), Some(limit));
    assert_eq!(r.header("ratelimit-remaining"), Some("0"));
    assert!(r.header("ratelimit-reset").is_some());
}

/// A unique e-mail for this test run.
pub fn email(tag: &str) -> String {
    format!("{tag}-{}@e2e.example.com", uuid::Uuid::new_v4().simple())
}

/// A directory under the system temporary directory, removed on drop.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    /// Creates `tm-e2e-<tag>-<random>`.
    pub fn new(tag: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("tm-e2e-{tag}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        Self(dir)
    }

    /// The directory.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `tenant-cli loadtest --url URL ARGS... --json` (nothing inherited but PATH) and returns
/// its report; panics with its output unless it exits 0.
pub async fn loadtest(url: &str, args: &[&str]) -> Value {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tenant-cli"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args(["loadtest", "--url", url, "--json"])
        .args(args)
        .output()
        .await
        .expect("run tenant-cli");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).expect("json report")
}
