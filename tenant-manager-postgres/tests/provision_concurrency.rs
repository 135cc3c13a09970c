//! More tenants provisioned at once than the global pool has connections: every run finishes.
//! Each run holds a global connection for the tenant's lock and needs another to record its
//! steps, so without a bound on concurrent runs they would wait on each other's connections
//! until the pool's acquire timeout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use futures::future::join_all;
use tenant_manager_core::{Isolation, Provisioner};

use common::Env;

/// Three times as many tenants as the test's global pool (5 connections) has connections.
const TENANTS: usize = 15;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn more_concurrent_provisionings_than_global_connections_all_finish() {
    let env = Env::new().await;
    let pool_size = env.pool.options().get_max_connections() as usize;
    assert!(
        TENANTS > pool_size,
        "the case needs more runs than connections"
    );
    let mut tenants = Vec::new();
    for n in 0..TENANTS {
        tenants.push(env.register(&format!("p{n}"), Isolation::Schema).await);
    }

    let provisioned = join_all(tenants.iter().map(|t| env.provisioner.provision(t))).await;
    for (tenant, result) in tenants.iter().zip(&provisioned) {
        assert!(result.is_ok(), "{}: {result:?}", tenant.slug);
    }
    for tenant in &tenants {
        assert!(
            env.provisioner
                .is_provisioned(tenant)
                .await
                .expect("status")
        );
    }

    let deprovisioned = join_all(tenants.iter().map(|t| env.provisioner.deprovision(t))).await;
    for (tenant, result) in tenants.iter().zip(&deprovisioned) {
        assert!(result.is_ok(), "{}: {result:?}", tenant.slug);
    }
}
