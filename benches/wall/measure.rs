//! The measurements: per checkout (every checkout switches tenant) and per statement (one
//! held checkout), each on both deployments, in criterion and interleaved.

use std::cell::Cell;
use std::time::{Duration, Instant};

use criterion::Criterion;
use sqlx::PgConnection;
use tenant_manager::postgres::PgTenantPools;
use tenant_manager::{Isolation, Tenant, TenantConnection};
use tenant_manager_test_support::unique_suffix;
use time::OffsetDateTime;
use tokio::runtime::Runtime;
use uuid::Uuid;

use crate::env::{Deployment, Layout, ROWS};
use crate::interleave::{Ratio, Runner, medians};

/// The list query of `/api/companies`.
const LIST: &str = "SELECT id, name, domain, created_at FROM companies ORDER BY id LIMIT 50";
type Company = (Uuid, String, Option<String>, OffsetDateTime);

/// Interleaved rounds, and operations per round of each peer.
const ROUNDS: usize = 30;
const CHECKOUT_OPS: u64 = 40;
const STATEMENT_OPS: u64 = 100;

const ISOLATIONS: [Isolation; 2] = [Isolation::Schema, Isolation::Shared];

fn label(isolation: Isolation, layout: Layout) -> String {
    let layout = match layout {
        Layout::Wall => "wall",
        Layout::PreWall => "pre-wall",
    };
    format!("{isolation}/{layout}")
}

async fn list(conn: &mut PgConnection) {
    let rows: Vec<Company> = sqlx::query_as(LIST)
        .fetch_all(conn)
        .await
        .expect("list query");
    assert_eq!(rows.len(), 50);
}

/// Two tenants of one isolation on a pool of one connection, checked out in turns.
struct Switching<'a> {
    pools: PgTenantPools,
    tenants: &'a [Tenant],
    next: Cell<usize>,
}

impl Switching<'_> {
    /// `ops` checkouts, each with the list query; the time they took.
    async fn run(&self, ops: u64) -> Duration {
        let started = Instant::now();
        for _ in 0..ops {
            let at = self.next.get();
            self.next.set(at + 1);
            let mut conn = self
                .pools
                .acquire(&self.tenants[at % 2])
                .await
                .expect("checkout");
            list(&mut conn).await;
        }
        started.elapsed()
    }
}

/// `ops` list queries on one held checkout; the time they took.
async fn statements(conn: &mut PgConnection, ops: u64) -> Duration {
    let started = Instant::now();
    for _ in 0..ops {
        list(conn).await;
    }
    started.elapsed()
}

/// The list query's plan as the session runs it (`EXPLAIN ANALYZE`, no timing).
async fn explain(conn: &mut PgConnection) -> String {
    let lines: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "EXPLAIN (ANALYZE, TIMING OFF, BUFFERS) {LIST}"
    )))
    .fetch_all(conn)
    .await
    .expect("explain");
    lines.join("\n")
}

/// Every tenant sees exactly its own companies on both paths (a bench of the wrong rows
/// would measure nothing).
async fn check(pools: &PgTenantPools, deployment: &Deployment) {
    for isolation in ISOLATIONS {
        for tenant in deployment.tenants(isolation) {
            let mut conn = pools.acquire(tenant).await.expect("checkout");
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM companies")
                .fetch_one(&mut *conn)
                .await
                .expect("count");
            assert_eq!(n, ROWS as i64, "{} sees its rows only", tenant.slug);
        }
    }
}

pub(crate) fn bench(
    criterion: &mut Criterion,
    runtime: &Runtime,
    wall: &Deployment,
    pre_wall: &Deployment,
) -> Vec<Ratio> {
    // The pool engine spawns its returns' resets on the runtime it is built in.
    let _runtime = runtime.enter();
    let app = format!("tmbench_wall_{}", unique_suffix());
    let deployments = [wall, pre_wall];
    let mut switching = Vec::new();
    let mut held: Vec<(String, TenantConnection<PgConnection>)> = Vec::new();
    let mut statement_pools = Vec::new();
    runtime.block_on(async {
        for deployment in deployments {
            let pools = deployment.pools(2, &app);
            check(&pools, deployment).await;
            statement_pools.push(pools);
        }
    });
    for isolation in ISOLATIONS {
        for (deployment, pools) in deployments.iter().zip(&statement_pools) {
            let name = label(isolation, deployment.layout);
            let tenants = deployment.tenants(isolation);
            switching.push((
                name.clone(),
                Switching {
                    pools: deployment.pools(1, &app),
                    tenants,
                    next: Cell::new(0),
                },
            ));
            let conn = runtime
                .block_on(pools.acquire(&tenants[0]))
                .expect("held checkout");
            held.push((name, conn));
        }
    }

    if std::env::var_os("TM_BENCH_WALL_EXPLAIN").is_some() {
        for (name, conn) in &mut held {
            println!("{name}:\n{}", runtime.block_on(explain(conn)));
        }
    }

    let mut group = criterion.benchmark_group("wall_checkout");
    for (name, peer) in &switching {
        group.bench_function(name.as_str(), |b| {
            b.iter_custom(|iters| runtime.block_on(peer.run(iters)));
        });
    }
    group.finish();
    let mut group = criterion.benchmark_group("wall_statement");
    for (name, conn) in &mut held {
        group.bench_function(name.as_str(), |b| {
            b.iter_custom(|iters| runtime.block_on(statements(conn, iters)));
        });
    }
    group.finish();

    let mut peers: Vec<(&str, Runner<'_>)> = switching
        .iter()
        .map(|(name, peer)| {
            let run = move |ops: u64| runtime.block_on(peer.run(ops));
            (name.as_str(), Box::new(run) as Runner<'_>)
        })
        .collect();
    let per_checkout = medians(ROUNDS, CHECKOUT_OPS, &mut peers);
    drop(peers);
    let mut peers: Vec<(&str, Runner<'_>)> = held
        .iter_mut()
        .map(|(name, conn)| {
            let run = move |ops: u64| runtime.block_on(statements(conn, ops));
            (name.as_str(), Box::new(run) as Runner<'_>)
        })
        .collect();
    let per_statement = medians(ROUNDS, STATEMENT_OPS, &mut peers);
    drop(peers);
    drop(held);

    let mut ratios = Vec::new();
    for (i, isolation) in ISOLATIONS.iter().enumerate() {
        for (what, times) in [
            ("checkout (tenant switch) + list query", &per_checkout),
            ("list query on a held checkout", &per_statement),
        ] {
            ratios.push(Ratio {
                what: format!("{what}, {isolation} tenants: wall vs pre-wall"),
                peer: times[2 * i],
                baseline: times[2 * i + 1],
                target: None,
            });
        }
    }
    runtime.block_on(async {
        for (_, peer) in &switching {
            peer.pools.close_all();
        }
        for pools in &statement_pools {
            pools.close_all();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    });
    ratios
}
