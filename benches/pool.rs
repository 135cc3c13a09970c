//! Pool manager benches (criterion), each against its peer in the same run, on the same
//! Postgres (`TEST_DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`):
//!
//! - `warm_checkout`: checkout + `SELECT 1` of one warm tenant through `TenantPools` (as
//!   `Arc<dyn PoolManager>`), a raw bb8 pool with the same `PgConnectionManager`, and a sqlx
//!   `PgPool`;
//! - `checkout_overhead`: checkout + return alone (fake manager, no database) with 1, 1,000
//!   and 10,000 warm tenant pools, against a raw bb8 pool of the same fake manager;
//! - `churn`: 1,000 tenants round-robin, global cap 50, 32 workers: queries/s, p99 wait for a
//!   connection and the peak number of server connections, against the hand-written
//!   `HashMap<TenantId, PgPool>` behind a lock.
//!
//! `cargo bench --bench pool --features postgres` (see BENCHMARKS.md for the flags used).
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)]

use std::collections::HashMap;
use std::hint::black_box;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use tenant_manager::core::pool::fake::{FakeConnector, FakeManager, FakeProbe, active_tenant};
use tenant_manager::core::pool::{PoolConfig, TenantPools};
use tenant_manager::postgres::{
    DerivedCredentials, PgConnectionManager, PgTenantConnector, ServerMap, quote_ident,
};
use tenant_manager::{Isolation, Placement, PoolManager, Secret, ServerId, Tenant, TenantId};
use tenant_manager_test_support::{TestDatabase, unique_suffix};
use tokio::runtime::Runtime;
use tokio::sync::{Mutex, RwLock};

const CHURN_TENANTS: usize = 1_000;
const CHURN_CAP: u32 = 50;
const CHURN_WORKERS: usize = 32;
/// The server refuses tenant logins beyond this many connections to the bench database, so
/// the hand-written peer cannot take the shared server's every connection.
const DATABASE_CONNECTION_LIMIT: u32 = 55;

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    checkout_overhead(&mut criterion, &current);
    let env = multi.block_on(PgEnv::create(1 + CHURN_TENANTS));
    warm_checkout(&mut criterion, &current, &env);
    let churn = churn(&mut criterion, &multi, &env);
    criterion.final_summary();
    println!("\nchurn: {CHURN_TENANTS} tenants round-robin, {CHURN_WORKERS} workers");
    println!(
        "| peer | queries ok | failed | queries/s | p50 wait | p99 wait | peak server connections |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, report) in churn {
        println!("| {name} | {report} |");
    }
    drop(env);
}

/// A bench database with one login role per tenant, dropped at the end.
struct PgEnv {
    db: Option<TestDatabase>,
    tenants: Vec<Tenant>,
    roles: Vec<String>,
    admin_url: String,
}

impl PgEnv {
    async fn create(n: usize) -> Self {
        let db = TestDatabase::create().await;
        let suffix = unique_suffix();
        let mut ddl = format!(
            "ALTER DATABASE {} CONNECTION LIMIT {DATABASE_CONNECTION_LIMIT};",
            quote_ident(db.name())
        );
        let mut tenants = Vec::with_capacity(n);
        let mut roles = Vec::with_capacity(n);
        for i in 0..n {
            let mut tenant =
                active_tenant(&format!("b{suffix}{i}"), Isolation::Database).expect("tenant");
            tenant.placement = Placement {
                server: ServerId::default_server(),
                database: db.name().to_owned(),
                schema: None,
            };
            let role = Placement::role_name(&tenant.slug);
            ddl.push_str(&format!("CREATE ROLE {} LOGIN;", quote_ident(&role)));
            roles.push(role);
            tenants.push(tenant);
        }
        let mut admin = PgConnection::connect(db.url()).await.expect("admin");
        sqlx::raw_sql(sqlx::AssertSqlSafe(ddl))
            .execute(&mut admin)
            .await
            .expect("roles");
        let _ = admin.close().await;
        Self {
            admin_url: db.admin_url().to_owned(),
            db: Some(db),
            tenants,
            roles,
        }
    }

    fn db(&self) -> &TestDatabase {
        self.db.as_ref().expect("database")
    }

    fn connector(&self, app: &str) -> PgTenantConnector {
        let servers = ServerMap::single(&self.admin_url).expect("servers");
        let credentials =
            DerivedCredentials::new(Secret::new("bench-master-secret-0123456789abcdef"))
                .expect("credentials");
        PgTenantConnector::new(servers, Arc::new(credentials)).with_application_name(app)
    }

    /// What the connector uses for `tenant`: its database, its role (trusted locally).
    fn tenant_options(&self, tenant: &Tenant, app: &str) -> PgConnectOptions {
        PgConnectOptions::from_str(&self.admin_url)
            .expect("url")
            .database(self.db().name())
            .username(&Placement::role_name(&tenant.slug))
            .application_name(app)
    }

    /// Polls the server sessions of `app` until stopped; returns the peak.
    fn sample_peak(&self, runtime: &Runtime, app: &str) -> PeakSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let (url, app, flag) = (
            self.db().url().to_owned(),
            app.to_owned(),
            Arc::clone(&stop),
        );
        let task = runtime.spawn(async move {
            let mut conn = PgConnection::connect(&url).await.expect("sampler");
            let mut peak = 0_i64;
            while !flag.load(Ordering::SeqCst) {
                let (n,): (i64,) = sqlx::query_as(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                )
                .bind(&app)
                .fetch_one(&mut conn)
                .await
                .expect("sample");
                peak = peak.max(n);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            peak
        });
        PeakSampler { stop, task }
    }
}

impl Drop for PgEnv {
    fn drop(&mut self) {
        drop(self.db.take());
        let (url, roles) = (self.admin_url.clone(), std::mem::take(&mut self.roles));
        let handle = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let mut conn = PgConnection::connect(&url).await.expect("admin");
                for chunk in roles.chunks(200) {
                    let names: Vec<String> = chunk.iter().map(|r| quote_ident(r)).collect();
                    let sql = format!("DROP ROLE IF EXISTS {}", names.join(", "));
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(&mut conn)
                        .await;
                }
            });
        });
        let _ = handle.join();
    }
}

struct PeakSampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<i64>,
}

impl PeakSampler {
    fn finish(self, runtime: &Runtime) -> i64 {
        self.stop.store(true, Ordering::SeqCst);
        runtime.block_on(self.task).expect("sampler")
    }
}

/// Checkout + `SELECT 1` of one warm tenant, three ways.
fn warm_checkout(criterion: &mut Criterion, runtime: &Runtime, env: &PgEnv) {
    let tenant = env.tenants[0].clone();
    let app = format!("tmbench_warm_{}", unique_suffix());
    let options = env.tenant_options(&tenant, &app);
    let (pools, raw_bb8, pg_pool) = runtime.block_on(async {
        let pools: Arc<dyn PoolManager<Connection = PgConnection>> = Arc::new(
            env.connector(&app)
                .into_pools(
                    PoolConfig::default()
                        .with_max_total(5)
                        .with_max_per_tenant(5),
                )
                .expect("pools"),
        );
        let raw_bb8 = bb8::Pool::builder()
            .max_size(5)
            .build(PgConnectionManager::new(options.clone()))
            .await
            .expect("bb8");
        let pg_pool = PgPoolOptions::new()
            .max_connections(5)
            .connect_with(options)
            .await
            .expect("sqlx pool");
        (pools, raw_bb8, pg_pool)
    });
    let mut group = criterion.benchmark_group("warm_checkout");
    group.bench_function("tenant_pools", |b| {
        b.to_async(runtime).iter(|| async {
            let mut conn = pools.acquire(&tenant).await.expect("checkout");
            sqlx::query("SELECT 1")
                .execute(&mut *conn)
                .await
                .expect("query");
        });
    });
    group.bench_function("raw_bb8", |b| {
        b.to_async(runtime).iter(|| async {
            let mut conn = raw_bb8.get().await.expect("checkout");
            sqlx::query("SELECT 1")
                .execute(&mut *conn)
                .await
                .expect("query");
        });
    });
    group.bench_function("sqlx_pgpool", |b| {
        b.to_async(runtime).iter(|| async {
            let mut conn = pg_pool.acquire().await.expect("checkout");
            sqlx::query("SELECT 1")
                .execute(&mut *conn)
                .await
                .expect("query");
        });
    });
    group.finish();
    runtime.block_on(pg_pool.close());
}

/// Checkout + return alone, with the fake manager: 1, 1,000 and 10,000 warm tenant pools
/// (round-robin over all of them), and raw bb8 as the floor.
fn checkout_overhead(criterion: &mut Criterion, runtime: &Runtime) {
    let mut group = criterion.benchmark_group("checkout_overhead");
    let raw = runtime.block_on(async {
        bb8::Pool::builder()
            .max_size(1)
            .build(FakeManager::new(
                "raw",
                Duration::ZERO,
                FakeProbe::default(),
            ))
            .await
            .expect("bb8")
    });
    group.bench_function("raw_bb8", |b| {
        b.to_async(runtime).iter(|| async {
            black_box(raw.get().await.expect("checkout").id());
        });
    });
    for n in [1_usize, 1_000, 10_000] {
        let tenants: Vec<Tenant> = (0..n)
            .map(|i| active_tenant(&format!("overhead{i}"), Isolation::Database).expect("tenant"))
            .collect();
        let max_total = u32::try_from(n).expect("fits");
        let pools = runtime.block_on(async {
            let pools = TenantPools::new(
                FakeConnector::new(),
                PoolConfig::default()
                    .with_max_total(max_total)
                    .with_max_per_tenant(1),
            )
            .expect("pools");
            for tenant in &tenants {
                drop(pools.acquire(tenant).await.expect("warm"));
            }
            pools
        });
        let next = AtomicUsize::new(0);
        group.bench_with_input(BenchmarkId::new("tenant_pools", n), &n, |b, &n| {
            b.to_async(runtime).iter(|| async {
                let tenant = &tenants[next.fetch_add(1, Ordering::Relaxed) % n];
                black_box(pools.acquire(tenant).await.expect("checkout").id());
            });
        });
        assert_eq!(
            pools.stats().connections_opened,
            n as u64,
            "all checkouts were warm"
        );
    }
    group.finish();
}

/// One churn workload's results.
#[derive(Default)]
struct ChurnStats {
    ok: AtomicU64,
    failed: AtomicU64,
    busy_nanos: AtomicU64,
    waits_micros: Mutex<Vec<u32>>,
    peak: AtomicU64,
}

impl std::fmt::Display for ChurnStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut waits = self
            .waits_micros
            .try_lock()
            .map(|w| w.clone())
            .unwrap_or_default();
        waits.sort_unstable();
        let pct = |p: f64| {
            let at = ((waits.len() as f64 * p) as usize).min(waits.len().saturating_sub(1));
            waits.get(at).map_or(0.0, |&us| f64::from(us) / 1000.0)
        };
        let ok = self.ok.load(Ordering::SeqCst);
        let secs = self.busy_nanos.load(Ordering::SeqCst) as f64 / 1e9;
        write!(
            f,
            "{ok} | {} | {:.0} | {:.1} ms | {:.1} ms | {}",
            self.failed.load(Ordering::SeqCst),
            ok as f64 / secs.max(1e-9),
            pct(0.50),
            pct(0.99),
            self.peak.load(Ordering::SeqCst)
        )
    }
}

/// A source of connections for the churn workload.
trait Checkout: Send + Sync + 'static {
    fn query(&self, tenant: &Tenant) -> impl Future<Output = Result<Duration, String>> + Send;
}

/// The pool engine through `dyn PoolManager`.
struct Engine(Arc<dyn PoolManager<Connection = PgConnection>>);

impl Checkout for Engine {
    async fn query(&self, tenant: &Tenant) -> Result<Duration, String> {
        let started = Instant::now();
        let mut conn = self.0.acquire(tenant).await.map_err(|e| e.to_string())?;
        let waited = started.elapsed();
        sqlx::query("SELECT 1")
            .execute(&mut *conn)
            .await
            .map_err(|e| e.to_string())?;
        Ok(waited)
    }
}

/// What users write today: a `PgPool` per tenant in a map behind a lock.
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
                    .acquire_timeout(Duration::from_millis(100))
                    .connect_lazy_with((self.options)(tenant))
            })
            .clone()
    }
}

impl Checkout for HandWritten {
    async fn query(&self, tenant: &Tenant) -> Result<Duration, String> {
        let started = Instant::now();
        let pool = self.pool(tenant).await;
        let mut conn = pool.acquire().await.map_err(|e| e.to_string())?;
        let waited = started.elapsed();
        sqlx::query("SELECT 1")
            .execute(&mut *conn)
            .await
            .map_err(|e| e.to_string())?;
        Ok(waited)
    }
}

/// Runs `batches` rounds of `CHURN_TENANTS` queries (round-robin over the tenants, by
/// `CHURN_WORKERS` workers) and returns the time they took.
async fn churn_batches<P: Checkout>(
    peer: &Arc<P>,
    tenants: &Arc<Vec<Tenant>>,
    next: &Arc<AtomicUsize>,
    stats: &Arc<ChurnStats>,
    batches: u64,
) -> Duration {
    let started = Instant::now();
    for _ in 0..batches {
        let end = next.load(Ordering::SeqCst) + CHURN_TENANTS;
        let mut workers = Vec::with_capacity(CHURN_WORKERS);
        for _ in 0..CHURN_WORKERS {
            let (peer, tenants, next, stats) = (
                Arc::clone(peer),
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
                    match peer.query(&tenants[i % tenants.len()]).await {
                        Ok(waited) => {
                            stats.ok.fetch_add(1, Ordering::SeqCst);
                            waits.push(u32::try_from(waited.as_micros()).unwrap_or(u32::MAX));
                        }
                        Err(_) => {
                            stats.failed.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
                stats.waits_micros.lock().await.extend(waits);
            }));
        }
        for worker in workers {
            worker.await.expect("worker");
        }
        // Workers overshoot `end` by one index each; start the next round where this ended.
        next.store(end, Ordering::SeqCst);
    }
    let elapsed = started.elapsed();
    let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
    stats.busy_nanos.fetch_add(nanos, Ordering::SeqCst);
    elapsed
}

fn churn_one<P: Checkout>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    runtime: &Runtime,
    env: &PgEnv,
    name: &str,
    app: &str,
    peer: Arc<P>,
) -> ChurnStats {
    let tenants = Arc::new(env.tenants[1..].to_vec());
    let (next, stats) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(ChurnStats::default()),
    );
    let sampler = env.sample_peak(runtime, app);
    group.bench_function(name, |b| {
        b.to_async(runtime)
            .iter_custom(|batches| churn_batches(&peer, &tenants, &next, &stats, batches));
    });
    let peak = sampler.finish(runtime);
    stats
        .peak
        .store(u64::try_from(peak).unwrap_or(0), Ordering::SeqCst);
    drop(peer);
    Arc::try_unwrap(stats).unwrap_or_else(|_| panic!("workers finished"))
}

/// 1,000 tenants round-robin under a global cap of 50, against the hand-written peer.
fn churn(criterion: &mut Criterion, runtime: &Runtime, env: &PgEnv) -> Vec<(String, ChurnStats)> {
    let mut group = criterion.benchmark_group("churn");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Elements(CHURN_TENANTS as u64));
    let mut results = Vec::new();

    let app = format!("tmbench_churn_{}", unique_suffix());
    let pools = runtime.block_on(async {
        env.connector(&app)
            .into_pools(
                PoolConfig::default()
                    .with_max_total(CHURN_CAP)
                    .with_max_per_tenant(5)
                    .with_acquire_timeout(Duration::from_secs(30)),
            )
            .expect("pools")
    });
    let engine = Arc::new(Engine(Arc::new(pools.clone())));
    let stats = churn_one(&mut group, runtime, env, "tenant_pools", &app, engine);
    let opened = pools.stats().connections_opened;
    results.push((
        format!("TenantPools (cap {CHURN_CAP}; {opened} connections opened)"),
        stats,
    ));
    runtime.block_on(async move { pools.close_all() });

    let app = format!("tmbench_peer_{}", unique_suffix());
    let options = {
        let (url, db, app) = (
            env.admin_url.clone(),
            env.db().name().to_owned(),
            app.clone(),
        );
        move |tenant: &Tenant| {
            PgConnectOptions::from_str(&url)
                .expect("url")
                .database(&db)
                .username(&Placement::role_name(&tenant.slug))
                .application_name(&app)
        }
    };
    let peer = Arc::new(HandWritten {
        pools: RwLock::new(HashMap::new()),
        options: Box::new(options),
    });
    let stats = churn_one(
        &mut group,
        runtime,
        env,
        "hashmap_of_pgpools",
        &app,
        Arc::clone(&peer),
    );
    let opened = runtime.block_on(async {
        let pools: Vec<PgPool> = peer.pools.write().await.drain().map(|(_, p)| p).collect();
        for pool in &pools {
            pool.close().await;
        }
        pools.len()
    });
    results.push((format!("HashMap<TenantId, PgPool> ({opened} pools)"), stats));
    group.finish();
    results
}
