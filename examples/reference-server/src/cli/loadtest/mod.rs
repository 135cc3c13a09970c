//! `tenant-cli loadtest`: registers tenants, logs their admins in, then drives tenant-scoped
//! traffic from concurrent clients for a bounded time, and prints throughput and latency
//! percentiles per operation.
//!
//! The run is bounded in time (`--duration`, at most one hour) and optionally in requests
//! (`--max-requests`); it stops by itself.
//!
//! Two ways skip the sign-up: `--sessions FILE` reuses the tenants a previous run saved with
//! `--save-sessions FILE` (so that repeated rounds measure the same tenants, and no
//! registration runs between them), and `--baseline` drives a single-tenant server with the
//! same routes and no authentication (`baseline-server`), sending no token at all.

mod scenario;
mod sessions;
mod stats;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt as _, TryStreamExt as _};
use indicatif::{ProgressBar, ProgressStyle};
use rand::RngCore as _;

use self::sessions::Session;
pub use self::stats::{OpReport, Report};
use self::stats::{Recorder, summarise};
use super::exit::{CliError, Exit};
use crate::http_client::{Auth, HttpClient};

/// Options of `tenant-cli loadtest`.
#[derive(Debug, Clone, clap::Args)]
#[non_exhaustive]
pub struct LoadtestArgs {
    /// Base URL of the server (plain http).
    #[arg(long, env = "LOADTEST_URL", default_value = "http://127.0.0.1:3001")]
    pub url: String,
    /// Organisations to register (with `--baseline`: placeholder sessions, for the same
    /// request pattern; ignored with `--sessions`).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub tenants: u32,
    /// Concurrent clients during the traffic phase. While there are no more tenants than
    /// clients each client keeps to one tenant; with more, each client takes another tenant on
    /// every request, so that every tenant gets traffic.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: u32,
    /// Length of the traffic phase, in seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub duration: u64,
    /// Stop the traffic phase after this many requests (0: only the duration bounds it).
    #[arg(long, default_value_t = 0)]
    pub max_requests: u64,
    /// Exit with code 8 when a larger share of traffic requests fails (429 not counted).
    #[arg(long, default_value_t = 0.01)]
    pub max_error_rate: f64,
    /// Seconds to wait for new tenants to become active (async provisioning).
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub ready_timeout: u64,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Skip the sign-up: drive the tenants saved by an earlier run's `--save-sessions`.
    #[arg(long, value_name = "FILE", conflicts_with = "baseline")]
    pub sessions: Option<PathBuf>,
    /// After the sign-up, save the tenants' ids and access tokens to FILE (created readable
    /// by its owner only), for later runs' `--sessions`.
    #[arg(long, value_name = "FILE", conflicts_with = "baseline")]
    pub save_sessions: Option<PathBuf>,
    /// The server is a single-tenant baseline with the same routes and no authentication
    /// (`baseline-server`): no sign-up, no token, the same request mix.
    #[arg(long)]
    pub baseline: bool,
}

impl LoadtestArgs {
    /// Options for `url` with the defaults otherwise.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            tenants: 10,
            concurrency: 32,
            duration: 30,
            max_requests: 0,
            max_error_rate: 0.01,
            ready_timeout: 120,
            json: false,
            sessions: None,
            save_sessions: None,
            baseline: false,
        }
    }

    /// Sets the number of tenants.
    #[must_use]
    pub fn with_tenants(mut self, tenants: u32) -> Self {
        self.tenants = tenants;
        self
    }

    /// Sets the concurrency.
    #[must_use]
    pub fn with_concurrency(mut self, concurrency: u32) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// Sets the traffic phase length in seconds.
    #[must_use]
    pub fn with_duration(mut self, seconds: u64) -> Self {
        self.duration = seconds;
        self
    }

    /// Sets the request budget of the traffic phase.
    #[must_use]
    pub fn with_max_requests(mut self, max: u64) -> Self {
        self.max_requests = max;
        self
    }

    /// Drives a single-tenant baseline server: no sign-up, no token.
    #[must_use]
    pub fn with_baseline(mut self, baseline: bool) -> Self {
        self.baseline = baseline;
        self
    }
}

/// Runs the load test and returns its report.
///
/// # Errors
/// [`CliError`] when the server does not answer, or registration or login fails.
pub async fn run(args: &LoadtestArgs) -> Result<Report, CliError> {
    let client = HttpClient::new(&args.url)
        .map_err(|e| CliError::new(Exit::Usage, e.to_string()))?
        .with_timeout(Duration::from_secs(30));
    match client.get("/health", Auth::None).await {
        Ok(r) if r.status.is_success() => {}
        Ok(r) => {
            return Err(CliError::new(
                Exit::Unavailable,
                format!("{}/health answered {}", args.url, r.status),
            ));
        }
        Err(e) => {
            return Err(CliError::new(
                Exit::Unavailable,
                format!("{}: {e}", args.url),
            ));
        }
    }
    let concurrency = usize::try_from(args.concurrency).unwrap_or(1);
    let (sessions, setup_recorder) = match (&args.sessions, args.baseline) {
        (Some(path), _) => (sessions::load(path)?, Recorder::default()),
        (None, true) => (sessions::baseline(args.tenants), Recorder::default()),
        (None, false) => sign_up(&client, args, concurrency).await?,
    };
    if let Some(path) = &args.save_sessions {
        sessions::save(path, &sessions)?;
    }
    let tenants = sessions.len();

    eprintln!(
        "driving traffic: {concurrency} clients for {} s",
        args.duration
    );
    let (traffic, elapsed) = drive(&client, Arc::new(sessions), args).await;
    let mut operations: std::collections::BTreeMap<String, OpReport> = traffic
        .ops
        .clone()
        .into_iter()
        .map(|(op, s)| (op.to_owned(), summarise(s, elapsed)))
        .collect();
    let mut all = stats::Samples::default();
    for (_, samples) in traffic.ops {
        all.merge(samples);
    }
    for (op, samples) in setup_recorder.ops {
        // Setup operations ran before the timed phase; their rate is not meaningful.
        let mut report = summarise(samples, elapsed);
        report.throughput_rps = 0.0;
        operations.insert(format!("{op} (setup)"), report);
    }
    Ok(Report {
        duration_seconds: elapsed.as_secs_f64(),
        tenants,
        concurrency,
        operations,
        total: summarise(all, elapsed),
    })
}

/// Registers `args.tenants` organisations, logs their admins in and waits until every tenant
/// is active: the sessions, and the recorded setup requests.
async fn sign_up(
    client: &HttpClient,
    args: &LoadtestArgs,
    concurrency: usize,
) -> Result<(Vec<Session>, Recorder), CliError> {
    let mut bytes = [0u8; 4];
    rand::rng().fill_bytes(&mut bytes);
    let run_id = hex::encode(bytes);
    eprintln!("registering {} organisations (run {run_id})", args.tenants);
    let setup: Vec<(Session, Recorder)> = stream::iter(0..args.tenants)
        .map(|i| {
            let client = client.clone();
            let run_id = run_id.clone();
            async move {
                let mut recorder = Recorder::default();
                let session =
                    scenario::register_and_login(&client, &mut recorder, &run_id, i).await?;
                Ok::<_, CliError>((session, recorder))
            }
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    let mut setup_recorder = Recorder::default();
    let mut sessions = Vec::with_capacity(setup.len());
    for (session, recorder) in setup {
        sessions.push(session);
        setup_recorder.merge(recorder);
    }
    let ready_timeout = Duration::from_secs(args.ready_timeout);
    stream::iter(sessions.iter())
        .map(|s| scenario::wait_active(client, s, ready_timeout))
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    Ok((sessions, setup_recorder))
}

/// The traffic phase: `concurrency` clients until the deadline or the request budget.
async fn drive(
    client: &HttpClient,
    sessions: Arc<Vec<Session>>,
    args: &LoadtestArgs,
) -> (Recorder, Duration) {
    let sent = Arc::new(AtomicU64::new(0));
    let budget = if args.max_requests == 0 {
        u64::MAX
    } else {
        args.max_requests
    };
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration);
    let progress = ProgressBar::new(args.duration);
    progress.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} s  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let ticker = {
        let progress = progress.clone();
        let sent = sent.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                progress.set_position(started.elapsed().as_secs());
                progress.set_message(format!("{} requests", sent.load(Ordering::Relaxed)));
            }
        })
    };
    let clients = u64::from(args.concurrency);
    let workers = (0..clients).map(|worker| {
        let client = client.clone();
        let sessions = sessions.clone();
        let sent = sent.clone();
        tokio::spawn(async move {
            let mut recorder = Recorder::default();
            let mut created = Vec::new();
            let mut own = 0u64;
            while Instant::now() < deadline {
                let n = sent.fetch_add(1, Ordering::Relaxed);
                if n >= budget {
                    break;
                }
                let current = sessions::session_index(worker, own, clients, sessions.len());
                own += 1;
                scenario::traffic_step(&client, &mut recorder, &sessions, current, &mut created, n)
                    .await;
            }
            recorder
        })
    });
    let mut total = Recorder::default();
    // A worker that panicked lost its samples; the others still count.
    for recorder in futures::future::join_all(workers)
        .await
        .into_iter()
        .flatten()
    {
        total.merge(recorder);
    }
    ticker.abort();
    progress.finish_and_clear();
    (total, started.elapsed())
}

/// `tenant-cli loadtest`: runs, prints, and turns the error budget into an exit code.
pub(crate) async fn command(args: LoadtestArgs) -> Result<Exit, CliError> {
    let report = run(&args).await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print!("{}", report.to_table());
    }
    if report.error_rate() > args.max_error_rate {
        eprintln!(
            "error rate {:.3}% is above the budget of {:.3}%",
            report.error_rate() * 100.0,
            args.max_error_rate * 100.0
        );
        return Ok(Exit::ErrorBudget);
    }
    Ok(Exit::Success)
}
