//! The cluster connection budget with the fake connector and the in-memory leases: the
//! in-memory leases pass the conformance suite, and three engines sharing one server's budget
//! never hold more connections together than the budget, while three engines with only their
//! local caps do.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod pool_engine_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use pool_engine_support::{config, tenants};
use tenant_manager_core::memory::InMemoryConnectionLeases;
use tenant_manager_core::pool::fake::{FakeConnector, FakeProbe};
use tenant_manager_core::pool::{ClusterBudget, TenantPools};
use tenant_manager_core::testing::Fixture;
use tenant_manager_core::{ConnectionLeases, Isolation, ServerId, Tenant};

async fn fixture() -> Fixture<dyn ConnectionLeases> {
    Fixture::new(Arc::new(InMemoryConnectionLeases::new()))
}

mod conformance {
    tenant_manager_core::connection_leases_conformance!(super::fixture);
}

const BUDGET: usize = 6;

/// Three engines, each allowed 8 connections locally, on one server: with `leases`, under one
/// cluster budget of [`BUDGET`].
fn engines(leases: Option<&InMemoryConnectionLeases>) -> Vec<(TenantPools<FakeConnector>, FakeProbe)> {
    (0..3)
        .map(|i| {
            let connector = FakeConnector::new().with_connect_latency(Duration::from_millis(1));
            let probe = connector.probe().clone();
            let config = config(8, 2).with_acquire_timeout(Duration::from_secs(10));
            let pools = match leases {
                Some(leases) => TenantPools::new_clustered(
                    connector,
                    config,
                    ClusterBudget::new(Arc::new(leases.clone()), format!("engine-{i}"))
                        .with_server(ServerId::default_server(), BUDGET as u32)
                        .with_lease_ttl(Duration::from_millis(300)),
                ),
                None => TenantPools::new(connector, config),
            }
            .expect("engine");
            (pools, probe)
        })
        .collect()
}

/// Load on 24 database tenants from every engine; returns the most connections the fake
/// server saw alive at once, all engines together.
async fn peak_under_load(engines: &[(TenantPools<FakeConnector>, FakeProbe)]) -> usize {
    let tenants: Arc<Vec<Tenant>> = Arc::new(tenants("clu", 24, Isolation::Database));
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicUsize::new(0));
    let probes: Vec<FakeProbe> = engines.iter().map(|(_, p)| p.clone()).collect();
    let sampler = {
        let (done, peak) = (Arc::clone(&done), Arc::clone(&peak));
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                let alive: usize = probes.iter().map(FakeProbe::alive).sum();
                peak.fetch_max(alive, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        })
    };
    let mut handles = Vec::new();
    for (e, (pools, _)) in engines.iter().enumerate() {
        for task in 0..8 {
            let (pools, tenants) = (pools.clone(), Arc::clone(&tenants));
            handles.push(tokio::spawn(async move {
                for round in 0..30 {
                    let pick = (e * 31 + task * 7 + round * 13) % tenants.len();
                    let conn = pools.acquire(&tenants[pick]).await.expect("acquire");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    drop(conn);
                }
            }));
        }
    }
    for handle in handles {
        handle.await.expect("task");
    }
    done.store(true, Ordering::SeqCst);
    sampler.await.expect("sampler");
    peak.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn engines_sharing_a_cluster_budget_stay_within_it_together() {
    let leases = InMemoryConnectionLeases::new();
    let engines = engines(Some(&leases));
    let peak = peak_under_load(&engines).await;
    println!("peak with the cluster budget: {peak}");
    assert!(peak <= BUDGET, "{peak} connections alive, budget {BUDGET}");
    assert!(peak > 0);
    let held = leases.held(&ServerId::default_server()).await.expect("held");
    assert!(held as usize <= BUDGET, "{held} slots leased");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn engines_with_local_caps_only_exceed_the_budget() {
    let engines = engines(None);
    let peak = peak_under_load(&engines).await;
    println!("peak with local caps only: {peak}");
    assert!(peak > BUDGET, "{peak} connections alive");
}
