//! Checkout + return in a loop, for counting what one checkout costs under
//! `valgrind --tool=cachegrind` (instructions and simulated cache misses, which machine load
//! does not move). The fake manager of the pool benches, no database.
//!
//! ```sh
//! cargo build --release --example pool_checkout_counts
//! valgrind --tool=cachegrind --cache-sim=yes --cachegrind-out-file=/dev/null \
//!     target/release/examples/pool_checkout_counts tenant-pools 10000 200000
//! ```
//!
//! Arguments: `tenant-pools`, `raw-bb8` (the pools in a `Vec`, no registry) or `bb8-map`
//! (raw bb8 pools in a `HashMap` by tenant id, looked up from the same tenants as
//! `tenant-pools`: a hand-written registry), the number of pools (each with one warm
//! connection, checked out round-robin), and the number of checkouts. Two runs that differ
//! only in the number of checkouts give the cost of one checkout: the difference of their
//! counts over the difference of their checkouts (`benches/pool/cachegrind.sh` does that).
#![allow(clippy::expect_used)]

use std::collections::HashMap;
use std::hint::black_box;

use tenant_manager::Isolation;
use tenant_manager::core::pool::fake::{FakeConnector, active_tenant};
use tenant_manager::core::pool::{PoolConfig, TenantPools};

#[path = "../benches/pool/raw.rs"]
mod raw;
use raw::warm_raw_pool;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: pool_checkout_counts tenant-pools|raw-bb8|bb8-map POOLS CHECKOUTS";
    let [_, engine, pools, checkouts] = &args[..] else {
        panic!("{usage}");
    };
    let pools: usize = pools.parse().expect(usage);
    let checkouts: usize = checkouts.parse().expect(usage);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        match engine.as_str() {
            "tenant-pools" => tenant_pools(pools, checkouts).await,
            "raw-bb8" => raw_bb8(pools, checkouts).await,
            "bb8-map" => bb8_map(pools, checkouts).await,
            _ => panic!("{usage}"),
        }
    });
}

/// As `benches/pool/overhead.rs`: `n` tenant pools of one warm connection each.
async fn tenant_pools(n: usize, checkouts: usize) {
    let tenants: Vec<_> = (0..n)
        .map(|i| active_tenant(&format!("overhead{i}"), Isolation::Database).expect("tenant"))
        .collect();
    let pools = TenantPools::new(
        FakeConnector::new(),
        PoolConfig::default()
            .with_max_total(u32::try_from(n).expect("fits"))
            .with_max_per_tenant(1),
    )
    .expect("pools");
    for tenant in &tenants {
        drop(pools.acquire(tenant).await.expect("warm"));
    }
    for i in 0..checkouts {
        let conn = pools.acquire(&tenants[i % n]).await.expect("checkout");
        black_box(conn.id());
    }
    assert_eq!(pools.stats().connections_opened, n as u64, "all warm");
}

/// As `benches/pool/overhead.rs`: `n` raw bb8 pools of the same fake manager.
async fn raw_bb8(n: usize, checkouts: usize) {
    let mut pools = Vec::with_capacity(n);
    for i in 0..n {
        pools.push(warm_raw_pool(&format!("raw{i}")).await);
    }
    for i in 0..checkouts {
        let conn = pools[i % n].get().await.expect("checkout");
        black_box(conn.id());
    }
}

/// Raw bb8 pools in a `HashMap` by tenant id, checked out for tenants as `tenant_pools` does.
async fn bb8_map(n: usize, checkouts: usize) {
    let tenants: Vec<_> = (0..n)
        .map(|i| active_tenant(&format!("overhead{i}"), Isolation::Database).expect("tenant"))
        .collect();
    let mut pools = HashMap::with_capacity(n);
    for tenant in &tenants {
        pools.insert(tenant.id, warm_raw_pool(&tenant.id.to_string()).await);
    }
    for i in 0..checkouts {
        let conn = pools[&tenants[i % n].id].get().await.expect("checkout");
        black_box(conn.id());
    }
}
