//! The tenant wall's cost at the pool (criterion), against the real Postgres
//! (`TEST_DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`), every peer
//! in the same run. Two deployments provisioned alike (app login, two schema and two shared
//! tenants, 100 companies each, the shared table also holding 8 more tenants' rows): one
//! behind the wall, checked out with `with_app_login(..).with_wall(..)`; the other converted
//! to the layout of the release before the wall and checked out the way it did
//! (`with_app_login_without_wall`: `SET ROLE` for schema tenants, `app.tenant_id` for shared
//! ones).
//!
//! - `wall_checkout`: checkout + the list query + return, alternating between two tenants of
//!   one isolation on a pool of one connection, so every checkout switches tenant and pays the
//!   scope (wall: `wall.enter()` with a fresh proof), the query and the reset, in turn;
//! - `wall_statement`: the list query alone, repeated on one held checkout.
//!
//! The list query is `/api/companies`': `SELECT id, name, domain, created_at FROM companies
//! ORDER BY id LIMIT 50`. After criterion's report the ratios are measured again interleaved
//! (peers taking turns, medians of many rounds), which holds up on a busy machine.
//!
//! `cargo bench --bench wall --features postgres` (about a minute after the build; see
//! BENCHMARKS.md, "The wall at the pool").
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)]

#[path = "wall/env.rs"]
mod env;
#[path = "pool/interleave.rs"]
mod interleave;
#[path = "wall/measure.rs"]
mod measure;

use std::time::Duration;

use criterion::Criterion;

fn main() {
    let mut criterion = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let wall = runtime.block_on(env::Deployment::create(env::Layout::Wall));
    let pre_wall = runtime.block_on(env::Deployment::create(env::Layout::PreWall));
    let ratios = measure::bench(&mut criterion, &runtime, &wall, &pre_wall);
    criterion.final_summary();
    println!("\n{}", interleave::table(&ratios));
    drop(wall);
    drop(pre_wall);
}
