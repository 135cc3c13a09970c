//! `tenant-cli scale`: the scale run. Starts a second Postgres cluster of its own, starts a
//! `reference-server` with both servers in `TENANT_SERVERS` and a connection budget, registers
//! `--tenants` tenants over both (shared and schema isolation, database isolation for a
//! sample), drives the same load over a small set of them and then over all of them
//! (round-robin), samples `pg_stat_activity` on both servers and the server's resident
//! memory, runs a fleet migration of a new version over every tenant, and reports it all.
//!
//! Everything the run creates is removed at the end, also on failure and on Ctrl-C or
//! SIGTERM: the server is stopped, every database and role on the first server whose name
//! carries the run's tag is dropped, the second cluster is stopped and its directory removed.

mod cluster;
mod latency;
mod load;
mod migrate;
mod probe;
mod progress;
mod register;
mod report;
mod server;

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt as _;
use rand::RngCore as _;

use self::cluster::Cluster;
use self::probe::Sampler;
use self::report::{LoadReport, MemoryReport, RegistrationReport, ScaleReport};
use self::server::ServerProcess;
use super::exit::{CliError, Exit};
use crate::config::Config;
use crate::http_client::HttpClient;

/// Options of `tenant-cli scale`.
#[derive(Debug, Clone, clap::Args)]
#[non_exhaustive]
pub struct ScaleArgs {
    /// Tenants to register.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(2..=100_000))]
    pub tenants: u32,
    /// Of which the first ones have their own database (a sample).
    #[arg(long, default_value_t = 20)]
    pub database_tenants: u32,
    /// Every n-th of the others is a shared (row-level) tenant, the rest schema tenants
    /// (0: no shared tenants).
    #[arg(long, default_value_t = 10)]
    pub shared_every: u32,
    /// Tenants of the small set of the first load phase (a random sample of all).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub small_set: u32,
    /// Concurrent clients of every load phase.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: u32,
    /// Length of each load phase, seconds (the phase over every tenant goes on until each
    /// had a request).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub duration: u64,
    /// Registrations in flight at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub register_concurrency: u32,
    /// Tenants migrated at once by the fleet migration.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub migrate_concurrency: u32,
    /// The server's connection budget for tenants, `MAX_TOTAL_CONNECTIONS`.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub budget: u32,
    /// The server's `GLOBAL_POOL_SIZE` (registry connections).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(2..=100))]
    pub global_pool: u32,
    /// Superuser URL of the first Postgres server (the second is started by the run).
    #[arg(
        long,
        env = "SCALE_ADMIN_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub admin_url: String,
    /// The `reference-server` binary (default: next to this `tenant-cli`).
    #[arg(long, value_name = "PATH")]
    pub server_bin: Option<PathBuf>,
    /// Also write the report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// `admin_url` with the database `database`.
fn with_database(admin_url: &str, database: &str) -> Result<String, CliError> {
    let mut url = url::Url::parse(admin_url)
        .map_err(|e| CliError::new(Exit::Usage, format!("--admin-url: {e}")))?;
    url.set_path(database);
    Ok(url.to_string())
}

/// What the run set up before the server: the tag, the second cluster, the variables.
struct Setup {
    tag: String,
    dir: PathBuf,
    cluster: Cluster,
    vars: Vec<(String, String)>,
    admin_key: String,
    port: u16,
}

impl Setup {
    async fn start(args: &ScaleArgs) -> Result<Self, CliError> {
        let tag = format!("sc{}", random_hex(4));
        let dir = std::env::temp_dir().join(format!("tm-scale-{tag}"));
        std::fs::create_dir_all(&dir)
            .map_err(|e| CliError::new(Exit::Failure, format!("{}: {e}", dir.display())))?;
        let cluster = Cluster::start(&dir, 100)?;
        let global = format!("{tag}_global");
        let mut admin = sqlx::PgConnection::connect(&args.admin_url)
            .await
            .map_err(|e| CliError::new(Exit::Unavailable, format!("--admin-url: {e}")))?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{global}\"")))
            .execute(&mut admin)
            .await
            .map_err(|e| CliError::new(Exit::Failure, format!("create {global}: {e}")))?;
        let _ = sqlx::Connection::close(admin).await;
        let admin_key = random_hex(32);
        let port = cluster::free_port()?;
        let servers = format!("default={} pg2={}", args.admin_url, cluster.admin_url());
        let vars = [
            ("APP_ENV", "development".to_owned()),
            ("BIND_ADDRESS", "127.0.0.1".to_owned()),
            ("PORT", port.to_string()),
            ("LOG_LEVEL", "warn".to_owned()),
            ("LOG_FORMAT", "json".to_owned()),
            ("JWT_SECRET", random_hex(32)),
            ("SUPER_ADMIN_KEY", admin_key.clone()),
            ("TENANT_DB_SECRET", random_hex(32)),
            (
                "GLOBAL_DATABASE_URL",
                with_database(&args.admin_url, &global)?,
            ),
            ("TENANT_SERVERS", servers),
            ("TENANT_STORAGE_PREFIX", tag.clone()),
            ("TENANT_SHARED_DATABASE", format!("{tag}_shared")),
            ("GLOBAL_POOL_SIZE", args.global_pool.to_string()),
            ("MAX_TOTAL_CONNECTIONS", args.budget.to_string()),
            ("MAX_CONNECTIONS_PER_TENANT", args.budget.min(4).to_string()),
            ("PASSWORD_HASHING", "fast".to_owned()),
            ("RATE_LIMIT_MAX_REQUESTS", "10000000".to_owned()),
            ("ACCESS_TOKEN_TTL_SECONDS", "86400".to_owned()),
            ("STORAGE_MEASURE_INTERVAL_MS", "0".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Ok(Self {
            tag,
            dir,
            cluster,
            vars,
            admin_key,
            port,
        })
    }

    fn config(&self) -> Result<Config, CliError> {
        let vars: BTreeMap<&str, &str> = self
            .vars
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Config::from_lookup(|k| vars.get(k).map(|v| (*v).to_owned()))
            .map_err(|e| CliError::new(Exit::Config, e.to_string()))
    }

    /// Drops what the run created on the first server, stops the second, removes the dir.
    async fn teardown(mut self, admin_url: &str) {
        match cluster::drop_tagged(admin_url, &self.tag).await {
            Ok((databases, roles)) => {
                eprintln!("cleaned up: {databases} databases and {roles} roles on the first server")
            }
            Err(e) => eprintln!("clean-up of {} failed: {e}", self.tag),
        }
        self.cluster.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

use sqlx::Connection as _;

/// Runs the scale run and returns its report (its `violations` filled in).
///
/// # Errors
/// [`CliError`] when a phase cannot run; interrupted by Ctrl-C or SIGTERM.
pub(crate) async fn run(args: &ScaleArgs) -> Result<ScaleReport, CliError> {
    let setup = Setup::start(args).await;
    let setup = match setup {
        Ok(s) => s,
        Err(e) => return Err(e),
    };
    let phases = AssertUnwindSafe(phases(args, &setup)).catch_unwind();
    let outcome = tokio::select! {
        r = phases => r.unwrap_or_else(|_| Err(CliError::new(Exit::Failure, "the run panicked"))),
        () = interrupted() => Err(CliError::new(Exit::Failure, "interrupted")),
    };
    setup.teardown(&args.admin_url).await;
    outcome
}

/// Ctrl-C or SIGTERM.
async fn interrupted() {
    #[cfg(unix)]
    {
        let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
        match term {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn server_binary(args: &ScaleArgs) -> Result<PathBuf, CliError> {
    if let Some(path) = &args.server_bin {
        return Ok(path.clone());
    }
    std::env::current_exe()
        .map(|exe| exe.with_file_name("reference-server"))
        .map_err(|e| CliError::new(Exit::Usage, format!("--server-bin: {e}")))
}

/// `database_server_tenants{server=...}` of the server's `/metrics`.
async fn placement(client: &HttpClient) -> BTreeMap<String, f64> {
    let text = match client.get("/metrics", crate::http_client::Auth::None).await {
        Ok(r) => String::from_utf8_lossy(&r.body).into_owned(),
        Err(_) => return BTreeMap::new(),
    };
    text.lines()
        .filter_map(|l| l.strip_prefix("database_server_tenants{server=\""))
        .filter_map(|rest| {
            let (id, value) = rest.split_once("\"} ")?;
            Some((id.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

async fn phases(args: &ScaleArgs, setup: &Setup) -> Result<ScaleReport, CliError> {
    let load_average_start = server::load_average();
    let client = HttpClient::new(&format!("http://127.0.0.1:{}", setup.port))
        .map_err(|e| CliError::new(Exit::Usage, e.to_string()))?
        .with_timeout(Duration::from_secs(60));
    let mut server = ServerProcess::start(
        &server_binary(args)?,
        &setup.vars,
        &client,
        setup.dir.join("server.log"),
    )
    .await?;
    let sampler = Sampler::start(
        [args.admin_url.as_str(), setup.cluster.admin_url().as_str()],
        &setup.tag,
        Duration::from_millis(10),
    )
    .await?;
    let rss_idle = server.rss_bytes();
    eprintln!("registering {} tenants (run {})", args.tenants, setup.tag);
    let registered = register::register(
        &client,
        &setup.admin_key,
        &setup.tag,
        args.tenants,
        usize::try_from(args.register_concurrency).unwrap_or(1),
        |i| register::isolation_of(i, args.database_tenants, args.shared_every),
    )
    .await;
    let registered = match registered {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{}", server.log_tail(20));
            return Err(e);
        }
    };
    let registration = RegistrationReport {
        registered: registered.tenants.len(),
        failed: registered.failed,
        errors: registered.errors.clone(),
        database: registered.by_isolation[0],
        schema: registered.by_isolation[1],
        shared: registered.by_isolation[2],
        concurrency: usize::try_from(args.register_concurrency).unwrap_or(1),
        seconds: registered.elapsed.as_secs_f64(),
        rate_per_second: registered.tenants.len() as f64
            / registered.elapsed.as_secs_f64().max(1e-9),
        latency: registered.latency,
        placement: placement(&client).await,
        load_average: server::load_average(),
        connections: sampler.take(),
    };
    let rss_registered = server.rss_bytes();
    let all = Arc::new(registered.tenants);
    let small_len = usize::try_from(args.small_set).unwrap_or(1).min(all.len());
    // A random sample, so that the small set has the isolation mix of the whole.
    let mut rng = rand::rng();
    let small = Arc::new(
        rand::seq::index::sample(&mut rng, all.len(), small_len)
            .into_iter()
            .filter_map(|i| all.get(i).cloned())
            .collect::<Vec<_>>(),
    );
    let concurrency = usize::try_from(args.concurrency).unwrap_or(1);
    let duration = Duration::from_secs(args.duration);
    let mut load = Vec::new();
    let mut rss = Vec::new();
    for (name, set) in [
        ("small set", small.clone()),
        ("every tenant", all.clone()),
        ("small set again", small),
    ] {
        eprintln!(
            "load: {name} ({} tenants, {concurrency} clients)",
            set.len()
        );
        let phase = load::drive(&client, set, concurrency, duration).await?;
        let rss_mib = server.rss_bytes();
        rss.push(rss_mib);
        load.push(LoadReport {
            name: name.to_owned(),
            phase,
            connections: sampler.take(),
            rss_mib: rss_mib as f64 / (1024.0 * 1024.0),
        });
    }
    let memory = MemoryReport::new(
        [
            rss_idle,
            rss_registered,
            rss[0],
            rss[1],
            server.peak_rss_bytes(),
        ],
        all.len(),
        small_len,
    );
    eprintln!("fleet migration of {} tenants", all.len());
    let migration = migrate::fleet(
        &setup.config()?,
        usize::try_from(args.migrate_concurrency).unwrap_or(1),
    )
    .await?;
    let migration_connections = sampler.take();
    let connections = sampler.overall();
    drop(sampler);
    server.stop();
    let p99_ratio = load[1].phase.latency.p99_ms / load[0].phase.latency.p99_ms.max(1e-9);
    let mut report = ScaleReport {
        tag: setup.tag.clone(),
        connection_budget: args.budget,
        cores: std::thread::available_parallelism().map_or(0, usize::from),
        load_average_start,
        registration,
        load,
        p99_ratio,
        memory,
        migration,
        migration_connections,
        connections,
        violations: Vec::new(),
    };
    report.check(usize::try_from(args.tenants).unwrap_or(0));
    Ok(report)
}

/// `tenant-cli scale`: runs, prints, writes the JSON, and exits 8 when an invariant broke.
pub(crate) async fn command(args: ScaleArgs) -> Result<Exit, CliError> {
    let report = run(&args).await?;
    let json = serde_json::to_string_pretty(&report).unwrap_or_default();
    if let Some(path) = &args.output {
        std::fs::write(path, &json)
            .map_err(|e| CliError::new(Exit::Failure, format!("{}: {e}", path.display())))?;
    }
    if args.json {
        println!("{json}");
    } else {
        print!("{}", report.to_table());
    }
    Ok(if report.violations.is_empty() {
        Exit::Success
    } else {
        Exit::ErrorBudget
    })
}
