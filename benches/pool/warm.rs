//! Checkout + `SELECT 1` of one warm tenant: the engine against raw bb8 with the same
//! manager and against a sqlx `PgPool`, all on the same role and database.

use std::sync::Arc;
use std::time::Instant;

use criterion::Criterion;
use sqlx::PgConnection;
use sqlx::postgres::PgPoolOptions;
use tenant_manager::PoolManager;
use tenant_manager::core::pool::PoolConfig;
use tenant_manager::postgres::{PgConnectionManager, PgTenantPools};
use tenant_manager_test_support::unique_suffix;
use tokio::runtime::Runtime;

use crate::env::PgEnv;
use crate::interleave::{Ratio, Runner, medians};

pub(crate) fn bench(criterion: &mut Criterion, runtime: &Runtime, env: &PgEnv) -> Vec<Ratio> {
    let tenant = env.database[0].clone();
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
            .connect_with(options.clone())
            .await
            .expect("sqlx pool");
        (pools, raw_bb8, pg_pool)
    });
    let engine = || async {
        let mut conn = pools.acquire(&tenant).await.expect("checkout");
        sqlx::query("SELECT 1")
            .execute(&mut *conn)
            .await
            .expect("query");
    };
    let bb8 = || async {
        let mut conn = raw_bb8.get().await.expect("checkout");
        sqlx::query("SELECT 1")
            .execute(&mut *conn)
            .await
            .expect("query");
    };
    let sqlx_pool = || async {
        let mut conn = pg_pool.acquire().await.expect("checkout");
        sqlx::query("SELECT 1")
            .execute(&mut *conn)
            .await
            .expect("query");
    };

    let mut group = criterion.benchmark_group("warm_checkout");
    group.bench_function("raw_bb8", |b| b.to_async(runtime).iter(bb8));
    group.bench_function("tenant_pools", |b| b.to_async(runtime).iter(engine));
    group.bench_function("sqlx_pgpool", |b| b.to_async(runtime).iter(sqlx_pool));
    group.finish();

    // Interleaved, each round on fresh pools (so fresh server backends): on this 2-core
    // machine two identical raw bb8 pools measured 97 vs 174 µs in one run, depending on
    // where the scheduler put their backends relative to the bench thread. A peer kept on
    // the same connections for the whole series inherits its backends' luck; fresh ones
    // every round spread it over all peers. The second raw bb8 pool is the A/A control.
    let fresh_bb8 = || async {
        bb8::Pool::builder()
            .max_size(5)
            .build(PgConnectionManager::new(options.clone()))
            .await
            .expect("bb8")
    };
    macro_rules! fresh_runner {
        ($make:expr, $op:expr, $close:expr) => {
            Box::new(move |ops: u64| {
                runtime.block_on(async {
                    let pool = $make().await;
                    for _ in 0..10 {
                        $op(&pool).await;
                    }
                    let started = Instant::now();
                    for _ in 0..ops {
                        $op(&pool).await;
                    }
                    let elapsed = started.elapsed();
                    $close(pool).await;
                    elapsed
                })
            }) as Runner<'_>
        };
    }
    let make_engine = || async {
        env.connector(&app)
            .into_pools(
                PoolConfig::default()
                    .with_max_total(5)
                    .with_max_per_tenant(5),
            )
            .expect("pools")
    };
    let on_engine = |pools: &PgTenantPools| {
        let pools = pools.clone();
        let tenant = tenant.clone();
        async move {
            let mut conn = pools.acquire(&tenant).await.expect("checkout");
            sqlx::query("SELECT 1")
                .execute(&mut *conn)
                .await
                .expect("query");
        }
    };
    let on_bb8 = |pool: &bb8::Pool<PgConnectionManager>| {
        let pool = pool.clone();
        async move {
            let mut conn = pool.get().await.expect("checkout");
            sqlx::query("SELECT 1")
                .execute(&mut *conn)
                .await
                .expect("query");
        }
    };
    // The sqlx pool keeps its connections for the whole series: a fresh `PgPool` per round
    // answered in about 1 ms per checkout here (it opens connections in the background while
    // the round runs), which would measure its start-up, not a warm checkout.
    let long_lived_sqlx = Box::new(|ops: u64| {
        runtime.block_on(async {
            let started = Instant::now();
            for _ in 0..ops {
                sqlx_pool().await;
            }
            started.elapsed()
        })
    }) as Runner<'_>;
    // Each round closes its pools, so the server's connections do not pile up.
    let close_engine = |pools: PgTenantPools| async move { pools.close_all() };
    let close_bb8 = |pool: bb8::Pool<PgConnectionManager>| async move { drop(pool) };
    let times = medians(
        30,
        200,
        &mut [
            (
                "tenant pools",
                fresh_runner!(make_engine, on_engine, close_engine),
            ),
            ("raw bb8", fresh_runner!(fresh_bb8, on_bb8, close_bb8)),
            ("sqlx", long_lived_sqlx),
            (
                "raw bb8 (control)",
                fresh_runner!(fresh_bb8, on_bb8, close_bb8),
            ),
        ],
    );
    runtime.block_on(pg_pool.close());
    vec![
        Ratio {
            what: "warm checkout + SELECT 1, TenantPools vs raw bb8 (same manager)".into(),
            peer: times[0],
            baseline: times[1],
            target: Some(1.2),
        },
        Ratio {
            what: "warm checkout + SELECT 1, TenantPools vs sqlx PgPool".into(),
            peer: times[0],
            baseline: times[2],
            target: None,
        },
        Ratio {
            what: "warm checkout + SELECT 1, raw bb8 vs an identical raw bb8 (A/A control)".into(),
            peer: times[3],
            baseline: times[1],
            target: None,
        },
    ]
}
