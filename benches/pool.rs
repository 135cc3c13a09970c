//! Pool manager benches (criterion), each against its peer in the same run, on the same
//! Postgres (`TEST_DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`):
//!
//! - `checkout_overhead`: checkout + return alone (fake manager, no database) with 1, 1,000
//!   and 10,000 warm tenant pools, against raw bb8 pools of the same fake manager;
//! - `warm_checkout`: checkout + `SELECT 1` of one warm tenant through `TenantPools` (as
//!   `Arc<dyn PoolManager>`), a raw bb8 pool with the same `PgConnectionManager`, and a sqlx
//!   `PgPool`;
//! - `churn`: 1,000 tenants round-robin, global cap 50, 32 workers: queries/s, wait for a
//!   connection (p50, p99) and the peak number of server connections, for database- and
//!   schema-isolated tenants, against the hand-written `HashMap<TenantId, PgPool>` behind a
//!   lock.
//!
//! After criterion's report, the key ratios are measured again interleaved (peers
//! alternating, medians of many rounds), which holds up on a busy machine.
//!
//! `cargo bench --bench pool --features postgres` (flags used: see BENCHMARKS.md);
//! `TM_BENCH_POOL_ONLY=warm` runs only `warm_checkout` (one tenant of each isolation), to
//! repeat that comparison quickly; `TM_BENCH_POOL_ONLY=overhead` runs only
//! `checkout_overhead` and its ratios, with no database at all (add a criterion filter that
//! matches nothing, say `-- ratios`, for the interleaved ratios alone).
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)]

#[path = "pool/churn.rs"]
mod churn;
#[path = "pool/env.rs"]
mod env;
#[path = "pool/interleave.rs"]
mod interleave;
#[path = "pool/overhead.rs"]
mod overhead;
#[path = "pool/raw.rs"]
mod raw;
#[path = "pool/warm.rs"]
mod warm;

use criterion::Criterion;

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

    // The tenants first: creating 1,000 roles and schemas keeps the server busy for a while,
    // which the database-free overhead benches leave it to finish.
    let only = std::env::var("TM_BENCH_POOL_ONLY").ok();
    let only_warm = only.as_deref() == Some("warm");
    if only.as_deref() == Some("overhead") {
        let ratios = overhead::bench(&mut criterion, &current);
        criterion.final_summary();
        println!("\n{}", interleave::table(&ratios));
        return;
    }
    let tenants = if only_warm { 1 } else { churn::TENANTS };
    let env = multi.block_on(env::PgEnv::create(tenants));
    let mut ratios = Vec::new();
    if !only_warm {
        ratios.extend(overhead::bench(&mut criterion, &current));
    }
    ratios.extend(warm::bench(&mut criterion, &current, &env));
    let churn = (!only_warm).then(|| churn::bench(&mut criterion, &multi, &env));
    criterion.final_summary();

    println!("\n{}", interleave::table(&ratios));
    if let Some(churn) = churn {
        println!("{churn}");
    }
    drop(env);
}
