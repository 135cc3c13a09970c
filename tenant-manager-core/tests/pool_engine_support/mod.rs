//! Helpers of the pool engine tests: fake tenants, an engine over the fake connector, and a
//! wait for asynchronous returns to finish.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use tenant_manager_core::pool::fake::{FakeConnector, FakeProbe, active_tenant};
use tenant_manager_core::pool::{PoolConfig, TenantPools};
use tenant_manager_core::{Isolation, Tenant};

/// `n` active tenants named `<prefix><i>`.
pub(crate) fn tenants(prefix: &str, n: usize, isolation: Isolation) -> Vec<Tenant> {
    (0..n)
        .map(|i| active_tenant(&format!("{prefix}{i}"), isolation).expect("valid slug"))
        .collect()
}

/// One active tenant.
pub(crate) fn tenant(slug: &str, isolation: Isolation) -> Tenant {
    active_tenant(slug, isolation).expect("valid slug")
}

/// An engine over a fake connector with `latency` per connect.
pub(crate) fn engine(
    config: PoolConfig,
    latency: Duration,
) -> (TenantPools<FakeConnector>, FakeProbe) {
    engine_with(FakeConnector::new().with_connect_latency(latency), config)
}

/// An engine over `connector`.
pub(crate) fn engine_with(
    connector: FakeConnector,
    config: PoolConfig,
) -> (TenantPools<FakeConnector>, FakeProbe) {
    let probe = connector.probe().clone();
    (TenantPools::new(connector, config).expect("engine"), probe)
}

/// A configuration with short timeouts for tests.
pub(crate) fn config(max_total: u32, max_per_tenant: u32) -> PoolConfig {
    PoolConfig::default()
        .with_max_total(max_total)
        .with_max_per_tenant(max_per_tenant)
        .with_acquire_timeout(Duration::from_secs(10))
}

/// Waits until `done` holds (returns of shared pools reset on spawned tasks), up to 5 s.
pub(crate) async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..5_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Waits until no connection is checked out (every return, and every reset, finished).
pub(crate) async fn settle(pools: &TenantPools<FakeConnector>) {
    eventually("returns to finish", || pools.stats().in_use == 0).await;
}
