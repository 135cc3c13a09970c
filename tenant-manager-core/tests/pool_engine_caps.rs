//! The caps of the pool engine under concurrency, with the fake connector (no database).
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod pool_engine_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use pool_engine_support::{config, engine, settle, tenant, tenants};
use tenant_manager_core::pool::TenantPools;
use tenant_manager_core::pool::fake::{FakeConnector, FakeProbe};
use tenant_manager_core::{Error, Isolation, PoolManager, Tenant};

/// Runs `tasks` tasks of `rounds` checkouts each over `tenants` (a skewed, deterministic mix:
/// every third checkout goes to one of the first three tenants), holding each connection for
/// up to 2 ms, while a sampler checks the engine's and the fake server's counts against the
/// caps. Returns how many checkouts failed.
async fn hammer(
    pools: &TenantPools<FakeConnector>,
    probe: &FakeProbe,
    tenants: Arc<Vec<Tenant>>,
    tasks: usize,
    rounds: usize,
) -> usize {
    let max_total = pools.config().max_total as usize;
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (pools, probe, done) = (pools.clone(), probe.clone(), Arc::clone(&done));
        tokio::spawn(async move {
            let mut samples = 0_u64;
            while !done.load(Ordering::SeqCst) {
                let stats = pools.stats();
                assert!(
                    stats.open as usize <= max_total,
                    "engine open {}",
                    stats.open
                );
                assert!(probe.alive() <= max_total, "server alive {}", probe.alive());
                samples += 1;
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
            samples
        })
    };
    let failures = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for task in 0..tasks {
        let (pools, tenants, failures) =
            (pools.clone(), Arc::clone(&tenants), Arc::clone(&failures));
        handles.push(tokio::spawn(async move {
            for round in 0..rounds {
                let n = tenants.len();
                let pick = if round % 3 == 0 {
                    task % 3
                } else {
                    (task * 7919 + round * 104_729) % n
                };
                match pools.acquire(&tenants[pick]).await {
                    Ok(conn) => {
                        assert_eq!(conn.tenant(), tenants[pick].id);
                        let hold = ((task + round) % 3) as u64;
                        tokio::time::sleep(Duration::from_millis(hold)).await;
                        drop(conn);
                    }
                    Err(err) => {
                        eprintln!("checkout failed: {err}");
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }));
    }
    for handle in handles {
        handle.await.expect("task finished");
    }
    done.store(true, Ordering::SeqCst);
    assert!(sampler.await.expect("sampler") > 0);
    failures.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tenant_pools_stay_within_the_global_and_per_tenant_caps() {
    let (pools, probe) = engine(config(20, 3), Duration::from_millis(1));
    let tenants = Arc::new(tenants("capdb", 300, Isolation::Database));
    let failures = hammer(&pools, &probe, tenants, 100, 30).await;
    assert_eq!(failures, 0, "every checkout finishes within the timeout");
    settle(&pools).await;
    assert!(probe.peak_alive() <= 20, "peak {}", probe.peak_alive());
    assert!(
        probe.max_peak_per_pool() <= 3,
        "per tenant {}",
        probe.max_peak_per_pool()
    );
    let stats = pools.stats();
    assert!(
        stats.evictions > 0,
        "idle connections were closed to make room"
    );
    assert_eq!(stats.open as usize, probe.alive());
    assert_eq!(stats.connections_opened, probe.opened());
    assert_eq!(stats.in_use, 0);
    assert_eq!(stats.timeouts, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shared_pools_cap_each_tenant_per_checkout() {
    let (pools, probe) = engine(config(10, 2), Duration::from_millis(1));
    let tenants = Arc::new(tenants("capsh", 200, Isolation::Shared));
    let failures = hammer(&pools, &probe, tenants, 60, 30).await;
    assert_eq!(failures, 0);
    settle(&pools).await;
    assert!(probe.peak_alive() <= 10, "peak {}", probe.peak_alive());
    assert!(
        probe.max_peak_scoped() <= 2,
        "per tenant {}",
        probe.max_peak_scoped()
    );
    assert_eq!(probe.stale_scopes(), 0, "every reused connection was reset");
    assert_eq!(pools.stats().pools, 1, "one pool for the shared database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_busy_tenant_waits_on_its_own_pool_not_on_the_budget() {
    let (pools, probe) = engine(config(4, 2), Duration::ZERO);
    let busy = tenant("busy", Isolation::Database);
    let quiet = tenant("quiet", Isolation::Database);
    let stop = Arc::new(AtomicBool::new(false));
    let mut hogs = Vec::new();
    for _ in 0..20 {
        let (pools, busy, stop) = (pools.clone(), busy.clone(), Arc::clone(&stop));
        hogs.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let conn = pools
                    .acquire(&busy)
                    .await
                    .expect("busy tenant gets its turn");
                tokio::time::sleep(Duration::from_millis(5)).await;
                drop(conn);
            }
        }));
    }
    pool_engine_support::eventually("the busy tenant at its cap", || {
        probe.alive_in(&busy.id.to_string()) == 2
    })
    .await;
    for _ in 0..20 {
        let conn = pools
            .acquire(&quiet)
            .await
            .expect("the quiet tenant is served");
        drop(conn);
    }
    stop.store(true, Ordering::SeqCst);
    for hog in hogs {
        hog.await.expect("hog finished");
    }
    let stats = pools.stats();
    assert_eq!(stats.waits, 0, "nobody waited for the global budget");
    assert!(probe.peak_alive_in(&busy.id.to_string()) <= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_budget_times_out_with_the_wait_then_recovers() {
    let timeout = Duration::from_millis(100);
    let (pools, probe) = engine(config(2, 2).with_acquire_timeout(timeout), Duration::ZERO);
    let [a, b, c] = ["exha", "exhb", "exhc"].map(|s| tenant(s, Isolation::Database));
    let held_a = pools.acquire(&a).await.expect("a");
    let held_b = pools.acquire(&b).await.expect("b");
    match pools.acquire(&c).await {
        Err(Error::PoolExhausted { waited }) => assert!(waited >= timeout, "waited {waited:?}"),
        other => panic!("expected pool_exhausted, got {other:?}"),
    }
    let stats = pools.stats();
    assert_eq!((stats.timeouts, stats.open), (1, 2));
    assert!(stats.waits >= 1, "c's connect waited for the budget");
    // A connection returned while c waits is closed so that c gets its permit.
    let waiter = {
        let (pools, c) = (pools.clone(), c.clone());
        tokio::spawn(async move { pools.acquire(&c).await.map(|conn| conn.tenant()) })
    };
    pool_engine_support::eventually("c waits for the budget", || {
        pools.stats().waits > stats.waits
    })
    .await;
    drop(held_a);
    assert_eq!(waiter.await.expect("joined").expect("c served"), c.id);
    assert!(probe.peak_alive() <= 2);
    assert_eq!(
        probe.alive_in(&a.id.to_string()),
        0,
        "a's connection made room"
    );
    drop(held_b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_overrides_lower_a_tenants_cap() {
    let (pools, probe) = engine(config(10, 5), Duration::ZERO);
    let mut small = tenant("smallquota", Isolation::Database);
    small.quota = Some(tenant_manager_core::QuotaPolicy {
        max_connections: 1,
        ..Default::default()
    });
    let first = pools.acquire(&small).await.expect("first");
    let second = {
        let (pools, small) = (pools.clone(), small.clone());
        tokio::spawn(async move { pools.acquire(&small).await.is_ok() })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(probe.alive_in(&small.id.to_string()), 1, "the second waits");
    drop(first);
    assert!(second.await.expect("joined"));
    let mut zero = small.clone();
    zero.quota = Some(tenant_manager_core::QuotaPolicy {
        max_connections: 0,
        ..Default::default()
    });
    let err = pools.acquire(&zero).await.err().map(|e| e.code());
    assert_eq!(err, Some("invalid_input"));
    assert_eq!(PoolManager::stats(&pools).max_per_tenant, 5);
}
