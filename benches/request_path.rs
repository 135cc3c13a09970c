//! What a tenant request costs on a shared pool behind the wall, against a plain query, every
//! peer in the same run, against the real Postgres (`TEST_DATABASE_URL`). One deployment
//! behind the wall (two schema tenants, 100 companies each, `benches/wall/env.rs`); the list
//! query of `/api/companies` (50 rows) run by 16 concurrent clients, each request a checkout,
//! the query and the return:
//!
//! - `plain`: a sqlx `PgPool` of the server's admin login, the query schema-qualified, no
//!   scoping, no ping before acquire (the query alone: what a single-tenant application pays
//!   at best);
//! - `reset on return`: `TenantPools` with affinity off (scope on checkout, query, reset on
//!   return: three round trips);
//! - `affinity, one tenant`: affinity on, every request for one tenant (the connection
//!   carries the scope: the query alone);
//! - `affinity, two tenants`: affinity on, requests alternating between two tenants (hits
//!   where an idle connection carries the tenant's scope, else a switch: reset and scope in
//!   one round trip, then the query).
//!
//! Each peer's pool holds 8 connections. Rounds are interleaved (peers take turns, the first
//! rotating); the table gives each peer's median requests/s, its spread over the rounds and its
//! ratio to `plain`, and how the checkouts got their scope (`reused/switched/set`).
//!
//! `cargo bench --bench request_path --features postgres` (BENCHMARKS.md, "Tenant affinity").
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)]

#[path = "wall/env.rs"]
mod env;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tenant_manager::pool::PoolConfig;
use tenant_manager::postgres::PgTenantPools;
use tenant_manager::{Isolation, Tenant};
use tenant_manager_test_support::unique_suffix;
use time::OffsetDateTime;
use uuid::Uuid;

use env::{Deployment, Layout};

const LIST: &str = "SELECT id, name, domain, created_at FROM companies ORDER BY id LIMIT 50";
type Company = (Uuid, String, Option<String>, OffsetDateTime);

const CLIENTS: u64 = 16;
const CONNECTIONS: u32 = 8;
const REQUESTS: u64 = 4_000;
const ROUNDS: usize = 5;

/// One peer of the comparison.
enum Peer {
    Plain {
        pool: PgPool,
        sql: String,
    },
    Tenants {
        pools: PgTenantPools,
        tenants: Vec<Tenant>,
    },
}

impl Peer {
    async fn request(&self, n: u64) {
        let rows: Vec<Company> = match self {
            Peer::Plain { pool, sql } => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .fetch_all(pool)
                .await
                .expect("plain query"),
            Peer::Tenants { pools, tenants } => {
                let tenant = &tenants[usize::try_from(n).unwrap_or(0) % tenants.len()];
                let mut conn = pools.acquire(tenant).await.expect("checkout");
                sqlx::query_as(LIST)
                    .fetch_all(&mut *conn)
                    .await
                    .expect("tenant query")
            }
        };
        assert_eq!(rows.len(), 50);
    }

    /// `REQUESTS` requests over `CLIENTS` concurrent clients; requests per second.
    async fn round(self: &Arc<Self>) -> f64 {
        let next = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let (peer, next) = (Arc::clone(self), Arc::clone(&next));
                tokio::spawn(async move {
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= REQUESTS {
                            return;
                        }
                        peer.request(n).await;
                    }
                })
            })
            .collect();
        for client in clients {
            client.await.expect("client");
        }
        REQUESTS as f64 / started.elapsed().as_secs_f64()
    }

    fn scope_counts(&self) -> String {
        match self {
            Peer::Plain { .. } => "-".to_owned(),
            Peer::Tenants { pools, .. } => {
                let stats = pools.stats();
                format!(
                    "{}/{}/{}",
                    stats.scope_reused, stats.scope_switched, stats.scope_set
                )
            }
        }
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let deployment = runtime.block_on(Deployment::create(Layout::Wall));
    let app = format!("tmbench_path_{}", unique_suffix());
    let tenants = deployment.tenants(Isolation::Schema).to_vec();
    let config = |affinity: Duration| {
        PoolConfig::default()
            .with_max_total(CONNECTIONS)
            .with_max_per_tenant(CONNECTIONS)
            .with_scope_affinity(affinity)
    };
    let peers: Vec<(&str, Arc<Peer>)> = runtime.block_on(async {
        // A bench of the wrong rows would measure nothing: each tenant sees its own.
        let check = deployment.pools(1, &app);
        for tenant in &tenants {
            let mut conn = check.acquire(tenant).await.expect("checkout");
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM companies")
                .fetch_one(&mut *conn)
                .await
                .expect("count");
            assert_eq!(n, env::ROWS as i64, "{} sees its rows only", tenant.slug);
        }
        check.close_all();
        let first = &tenants[0];
        let schema = first.placement.schema.clone().expect("schema tenant");
        let url = format!(
            "{}/{}",
            deployment
                .admin_url
                .rsplit_once('/')
                .map_or("", |(base, _)| base),
            first.placement.database
        );
        // No ping before each acquire (sqlx's default): the plain peer is the query alone.
        let plain = PgPoolOptions::new()
            .max_connections(CONNECTIONS)
            .test_before_acquire(false)
            .connect(&url)
            .await
            .expect("plain pool");
        let tenant_pools = |affinity: Duration| deployment.pools_with(config(affinity), &app);
        vec![
            (
                "plain (PgPool, schema-qualified)",
                Arc::new(Peer::Plain {
                    pool: plain,
                    sql: LIST.replace("FROM companies", &format!("FROM \"{schema}\".companies")),
                }),
            ),
            (
                "reset on return (affinity off)",
                Arc::new(Peer::Tenants {
                    pools: tenant_pools(Duration::ZERO),
                    tenants: vec![first.clone()],
                }),
            ),
            (
                "affinity, one tenant",
                Arc::new(Peer::Tenants {
                    pools: tenant_pools(Duration::from_secs(5)),
                    tenants: vec![first.clone()],
                }),
            ),
            (
                "affinity, two tenants alternating",
                Arc::new(Peer::Tenants {
                    pools: tenant_pools(Duration::from_secs(5)),
                    tenants: tenants.clone(),
                }),
            ),
        ]
    });
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); peers.len()];
    runtime.block_on(async {
        for (_, peer) in &peers {
            peer.round().await; // warm-up: connections open, statements prepared
        }
        for round in 0..ROUNDS {
            for i in 0..peers.len() {
                let at = (i + round) % peers.len();
                rates[at].push(peers[at].1.round().await);
            }
        }
    });
    let median = |r: &[f64]| {
        let mut r = r.to_vec();
        r.sort_by(f64::total_cmp);
        r[r.len() / 2]
    };
    let plain = median(&rates[0]);
    println!(
        "\n{CLIENTS} clients, {CONNECTIONS} connections per peer, {ROUNDS} rounds of {REQUESTS} requests\n"
    );
    println!("| peer | requests/s (median) | min-max | vs plain | scope reused/switched/set |");
    println!("|---|---|---|---|---|");
    for ((name, peer), r) in peers.iter().zip(&rates) {
        let (lo, hi) = r
            .iter()
            .fold((f64::MAX, 0f64), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
        println!(
            "| {name} | {:.0} | {lo:.0}-{hi:.0} | {:.2} | {} |",
            median(r),
            median(r) / plain,
            peer.scope_counts()
        );
    }
    runtime.block_on(async {
        for (_, peer) in &peers {
            match &**peer {
                Peer::Plain { pool, .. } => pool.close().await,
                Peer::Tenants { pools, .. } => pools.close_all(),
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    });
    drop(peers);
    drop(deployment);
}
