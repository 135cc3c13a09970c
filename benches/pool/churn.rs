//! Churn: 1,000 tenants round-robin under a global cap of 50, by 32 workers, against the
//! hand-written `HashMap<TenantId, PgPool>` behind a lock.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool};
use tenant_manager::core::pool::PoolConfig;
use tenant_manager::{PoolManager, Tenant, TenantId};
use tenant_manager_test_support::unique_suffix;
use tokio::runtime::Runtime;
use tokio::sync::{Mutex, RwLock};

use crate::env::{DATABASE_CONNECTION_LIMIT, PgEnv};

pub(crate) const TENANTS: usize = 1_000;
const CAP: u32 = 50;
const WORKERS: usize = 32;
/// Queries per criterion iteration (the round-robin continues across iterations).
const BATCH: usize = 100;
/// The hand-written peer's acquire timeout (sqlx retries a refused connect until then).
const PEER_ACQUIRE_TIMEOUT: Duration = Duration::from_millis(250);

/// One churn run's results.
#[derive(Default)]
struct Stats {
    ok: AtomicU64,
    failed: AtomicU64,
    busy_nanos: AtomicU64,
    waits_micros: Mutex<Vec<u32>>,
    first_error: Mutex<Option<String>>,
}

/// A source of connections for the churn workload.
trait Source: Send + Sync + 'static {
    /// Checks out a connection of `tenant` and runs `SELECT 1`; returns the wait.
    fn query(&self, tenant: &Tenant) -> impl Future<Output = Result<Duration, String>> + Send;
}

/// One `SELECT 1` on a checked-out connection.
async fn select_one(conn: &mut PgConnection) -> Result<(), String> {
    sqlx::query("SELECT 1")
        .execute(conn)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The pool engine, through `dyn PoolManager`.
struct Engine(Arc<dyn PoolManager<Connection = PgConnection>>);

impl Source for Engine {
    async fn query(&self, tenant: &Tenant) -> Result<Duration, String> {
        let started = Instant::now();
        let mut conn = self.0.acquire(tenant).await.map_err(|e| e.to_string())?;
        let waited = started.elapsed();
        select_one(&mut conn).await?;
        Ok(waited)
    }
}

/// What users write today: a `PgPool` per tenant in a map behind a lock, created on first
/// use with the usual options.
struct HandWritten {
    pools: RwLock<HashMap<TenantId, PgPool>>,
    options: Box<dyn Fn(&Tenant) -> PgConnectOptions + Send + Sync>,
}

impl HandWritten {
    async fn pool(&self, tenant: &Tenant) -> PgPool {
        if let Some(pool) = self.pools.read().await.get(&tenant.id) {
            return pool.clone();
        }
        let mut pools = self.pools.write().await;
        pools
            .entry(tenant.id)
            .or_insert_with(|| {
                PgPoolOptions::new()
                    .max_connections(5)
                    .acquire_timeout(PEER_ACQUIRE_TIMEOUT)
                    .connect_lazy_with((self.options)(tenant))
            })
            .clone()
    }
}

impl Source for HandWritten {
    async fn query(&self, tenant: &Tenant) -> Result<Duration, String> {
        let started = Instant::now();
        let pool = self.pool(tenant).await;
        let mut conn = pool.acquire().await.map_err(|e| e.to_string())?;
        let waited = started.elapsed();
        select_one(&mut conn).await?;
        Ok(waited)
    }
}

/// Runs `batches` batches of `BATCH` queries round-robin over `tenants` by `WORKERS`
/// workers; returns the time they took.
async fn run<S: Source>(
    source: &Arc<S>,
    tenants: &Arc<Vec<Tenant>>,
    next: &Arc<AtomicUsize>,
    stats: &Arc<Stats>,
    batches: u64,
) -> Duration {
    let started = Instant::now();
    for _ in 0..batches {
        let end = next.load(Ordering::SeqCst) + BATCH;
        let mut workers = Vec::with_capacity(WORKERS);
        for _ in 0..WORKERS {
            let (source, tenants, next, stats) = (
                Arc::clone(source),
                Arc::clone(tenants),
                Arc::clone(next),
                Arc::clone(stats),
            );
            workers.push(tokio::spawn(async move {
                let mut waits = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= end {
                        break;
                    }
                    match source.query(&tenants[i % tenants.len()]).await {
                        Ok(waited) => {
                            stats.ok.fetch_add(1, Ordering::SeqCst);
                            waits.push(u32::try_from(waited.as_micros()).unwrap_or(u32::MAX));
                        }
                        Err(err) => {
                            stats.failed.fetch_add(1, Ordering::SeqCst);
                            stats.first_error.lock().await.get_or_insert(err);
                        }
                    }
                }
                stats.waits_micros.lock().await.extend(waits);
            }));
        }
        for worker in workers {
            worker.await.expect("worker");
        }
        // Workers overshoot `end` by one index each; the next batch starts where this ended.
        next.store(end, Ordering::SeqCst);
    }
    let elapsed = started.elapsed();
    let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
    stats.busy_nanos.fetch_add(nanos, Ordering::SeqCst);
    elapsed
}

/// Benches `source` as `name`, sampling the peak of `app`'s server sessions.
fn one<S: Source>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    runtime: &Runtime,
    env: &PgEnv,
    (name, app): (&str, &str),
    source: Arc<S>,
    tenants: &[Tenant],
) -> Row {
    let tenants = Arc::new(tenants.to_vec());
    let (next, stats) = (Arc::new(AtomicUsize::new(0)), Arc::new(Stats::default()));
    let sampler = env.sample_peak(runtime, app);
    group.bench_function(name, |b| {
        b.to_async(runtime)
            .iter_custom(|batches| run(&source, &tenants, &next, &stats, batches));
    });
    let peak = sampler.finish(runtime);
    let stats = Arc::try_unwrap(stats).unwrap_or_else(|_| panic!("workers finished"));
    Row::new(name.to_owned(), stats, peak)
}

/// A row of the churn table.
struct Row {
    name: String,
    ok: u64,
    failed: u64,
    qps: f64,
    p50_ms: f64,
    p99_ms: f64,
    peak: i64,
    first_error: Option<String>,
}

impl Row {
    fn new(name: String, stats: Stats, peak: i64) -> Self {
        let mut waits = stats.waits_micros.into_inner();
        waits.sort_unstable();
        let pct = |p: f64| {
            let at = ((waits.len() as f64 * p) as usize).min(waits.len().saturating_sub(1));
            waits.get(at).map_or(0.0, |&us| f64::from(us) / 1000.0)
        };
        let ok = stats.ok.load(Ordering::SeqCst);
        let secs = stats.busy_nanos.load(Ordering::SeqCst) as f64 / 1e9;
        Self {
            name,
            ok,
            failed: stats.failed.load(Ordering::SeqCst),
            qps: ok as f64 / secs.max(1e-9),
            p50_ms: pct(0.50),
            p99_ms: pct(0.99),
            peak,
            first_error: stats.first_error.into_inner(),
        }
    }
}

/// The churn results, printed as a Markdown table.
pub(crate) struct Report(Vec<Row>);

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "churn: {TENANTS} tenants round-robin, {WORKERS} workers, global cap {CAP}, \
             database connection limit {DATABASE_CONNECTION_LIMIT}"
        )?;
        writeln!(
            f,
            "| run | queries ok | failed | queries/s | p50 wait | p99 wait | peak server connections |"
        )?;
        writeln!(f, "|---|---|---|---|---|---|---|")?;
        for r in &self.0 {
            writeln!(
                f,
                "| {} | {} | {} | {:.0} | {:.1} ms | {:.1} ms | {} |",
                r.name, r.ok, r.failed, r.qps, r.p50_ms, r.p99_ms, r.peak
            )?;
        }
        for r in &self.0 {
            if let Some(err) = &r.first_error {
                writeln!(f, "first error of {}: {err}", r.name)?;
            }
        }
        Ok(())
    }
}

pub(crate) fn bench(criterion: &mut Criterion, runtime: &Runtime, env: &PgEnv) -> Report {
    let mut group = criterion.benchmark_group("churn");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Elements(BATCH as u64));
    let config = PoolConfig::default()
        .with_max_total(CAP)
        .with_max_per_tenant(5)
        .with_acquire_timeout(Duration::from_secs(30));
    let mut rows = Vec::new();

    for (name, tenants) in [
        ("tenant_pools/database", &env.database),
        ("tenant_pools/schema", &env.schema),
    ] {
        let app = format!("tmbench_churn_{}", unique_suffix());
        let pools = runtime.block_on(async {
            env.connector(&app)
                .into_pools(config.clone())
                .expect("pools")
        });
        let source = Arc::new(Engine(Arc::new(pools.clone())));
        let mut row = one(&mut group, runtime, env, (name, &app), source, tenants);
        row.name = format!(
            "{name} ({} connections opened)",
            pools.stats().connections_opened
        );
        rows.push(row);
        runtime.block_on(async move { pools.close_all() });
    }

    let app = format!("tmbench_peer_{}", unique_suffix());
    let peer = Arc::new(HandWritten {
        pools: RwLock::new(HashMap::new()),
        options: Box::new({
            let options: HashMap<TenantId, PgConnectOptions> = env
                .database
                .iter()
                .map(|t| (t.id, env.tenant_options(t, &app)))
                .collect();
            move |tenant: &Tenant| options[&tenant.id].clone()
        }),
    });
    let name = "hashmap_of_pgpools/database";
    let mut row = one(
        &mut group,
        runtime,
        env,
        (name, &app),
        Arc::clone(&peer),
        &env.database,
    );
    let opened = runtime.block_on(async {
        let pools: Vec<PgPool> = peer.pools.write().await.drain().map(|(_, p)| p).collect();
        for pool in &pools {
            pool.close().await;
        }
        pools.len()
    });
    row.name = format!("{name} ({opened} pools)");
    rows.push(row);
    group.finish();
    Report(rows)
}
