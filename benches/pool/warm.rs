//! Checkout + `SELECT 1` of one warm tenant: the engine against raw bb8 with the same
//! manager and against a sqlx `PgPool`, all on the same role and database.

use std::sync::Arc;
use std::time::Instant;

use criterion::Criterion;
use sqlx::PgConnection;
use sqlx::postgres::PgPoolOptions;
use tenant_manager::PoolManager;
use tenant_manager::core::pool::PoolConfig;
use tenant_manager::postgres::PgConnectionManager;
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
            .connect_with(options)
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

    macro_rules! runner {
        ($op:expr) => {
            Box::new(move |ops: u64| {
                runtime.block_on(async {
                    let started = Instant::now();
                    for _ in 0..ops {
                        $op().await;
                    }
                    started.elapsed()
                })
            }) as Runner<'_>
        };
    }
    let times = medians(
        30,
        200,
        &mut [
            ("tenant pools", runner!(engine)),
            ("raw bb8", runner!(bb8)),
            ("sqlx", runner!(sqlx_pool)),
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
    ]
}
