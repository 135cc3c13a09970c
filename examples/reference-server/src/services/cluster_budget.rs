//! The cluster connection budget of each Postgres server, from `TENANT_SERVERS` (`budget=N`)
//! and `CLUSTER_CONNECTION_BUDGET`, leased through the shared leases (Redis when `REDIS_URL`
//! is set, so every instance counts against one budget; in memory otherwise, for this
//! instance alone).

use std::sync::Arc;

use tenant_manager::ConnectionLeases;
use tenant_manager::pool::ClusterBudget;

use super::worker::consumer_name;
use crate::config::Config;

/// The budget of every server that has one (its `budget=`, else `CLUSTER_CONNECTION_BUDGET`),
/// held under a name unique to this process, or `None` when no server has one.
pub(super) fn budget(config: &Config, leases: Arc<dyn ConnectionLeases>) -> Option<ClusterBudget> {
    let fallback = config.pool.cluster_budget;
    // Host and pid, and a random part: a restarted instance never takes over the slots of the
    // one before it (they expire with its lease).
    let holder = format!(
        "pool-{}-{:08x}",
        consumer_name().trim_start_matches("worker-"),
        rand::random::<u32>()
    );
    let mut budget =
        ClusterBudget::new(leases, holder).with_lease_ttl(config.pool.cluster_lease_ttl);
    let mut any = false;
    for server in config.database.tenant_servers() {
        if let Some(limit) = server.budget.or(fallback) {
            budget = budget.with_server(server.spec.id, limit);
            any = true;
        }
    }
    any.then_some(budget)
}
