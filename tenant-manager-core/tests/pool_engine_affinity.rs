//! Tenant affinity on shared pools: a connection its tenant returned clean goes back to that
//! tenant with no scope call; any other tenant gets it reset and scoped in one step; nothing
//! of one tenant's scope reaches another, also after failures, cancellations and the window
//! (fake connector, no database).
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod pool_engine_support;

use std::time::Duration;

use pool_engine_support::{config, engine_with, settle, tenant, tenants};
use tenant_manager_core::Isolation;
use tenant_manager_core::pool::fake::FakeConnector;

fn keeping() -> FakeConnector {
    FakeConnector::new().with_keep_scope(true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_checkout_of_one_tenant_sends_no_scope_call() {
    let (pools, probe) = engine_with(keeping(), config(4, 4));
    let a = tenant("affrepeat", Isolation::Schema);
    for _ in 0..100 {
        let conn = pools.acquire(&a).await.expect("a");
        assert_eq!(conn.query().expect("query"), Some(a.id));
    }
    settle(&pools).await;
    let stats = pools.stats();
    assert_eq!(
        (stats.scope_set, stats.scope_reused, stats.scope_switched),
        (1, 99, 0)
    );
    assert_eq!(
        probe.resets(),
        0,
        "nothing reset between checkouts of one tenant"
    );
    assert_eq!(probe.opened(), 1);
    assert_eq!(probe.stale_scopes(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_affinity_every_return_is_reset() {
    let (pools, probe) = engine_with(keeping(), config(4, 4).with_scope_affinity(Duration::ZERO));
    let a = tenant("affoff", Isolation::Schema);
    for _ in 0..20 {
        drop(pools.acquire(&a).await.expect("a"));
        settle(&pools).await;
    }
    let stats = pools.stats();
    assert_eq!((stats.scope_set, stats.scope_reused), (20, 0));
    assert_eq!(probe.resets(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn switching_tenants_clears_the_old_scope_in_the_same_step() {
    let (pools, probe) = engine_with(keeping(), config(1, 1));
    let all = tenants("affswitch", 3, Isolation::Schema);
    for round in 0..60 {
        let t = &all[round % 3];
        let conn = pools.acquire(t).await.expect("checkout");
        assert_eq!(conn.query().expect("query"), Some(t.id), "round {round}");
        for other in all.iter().filter(|o| o.id != t.id) {
            assert_eq!(
                probe.scoped(other.id),
                0,
                "round {round}: no other scope alive"
            );
        }
    }
    settle(&pools).await;
    let stats = pools.stats();
    assert_eq!(stats.scope_switched, 59);
    assert_eq!(probe.switches(), 59);
    assert_eq!(probe.stale_scopes(), 0);
    assert_eq!(probe.opened(), 1, "one connection served all three");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_checkout_prefers_an_idle_connection_that_carries_its_scope() {
    let (pools, probe) = engine_with(keeping(), config(4, 4));
    let all = tenants("affprefer", 4, Isolation::Schema);
    // Four connections, each left with one tenant's scope.
    let held: Vec<_> = futures_join(&pools, &all).await;
    let ids: Vec<u64> = held.iter().map(|c| c.id()).collect();
    drop(held);
    settle(&pools).await;
    // Whatever bb8's order, each tenant gets back the connection that carries its scope.
    for round in 0..5 {
        for (i, t) in all.iter().enumerate() {
            let conn = pools.acquire(t).await.expect("checkout");
            assert_eq!(conn.id(), ids[i], "round {round}, tenant {i}");
            assert_eq!(conn.query().expect("query"), Some(t.id));
        }
    }
    let stats = pools.stats();
    assert_eq!((stats.scope_set, stats.scope_switched), (4, 0));
    assert_eq!(stats.scope_reused, 20);
    assert_eq!(probe.opened(), 4);
}

/// One checkout of each tenant, all held at once.
async fn futures_join(
    pools: &tenant_manager_core::pool::TenantPools<FakeConnector>,
    all: &[tenant_manager_core::Tenant],
) -> Vec<tenant_manager_core::TenantConnection<tenant_manager_core::pool::fake::FakeConnection>> {
    let mut held = Vec::new();
    for t in all {
        held.push(pools.acquire(t).await.expect("checkout"));
    }
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scope_kept_too_long_is_switched_not_reused_and_the_reaper_resets_it() {
    let (pools, probe) = engine_with(
        keeping(),
        config(4, 4).with_scope_affinity(Duration::from_millis(50)),
    );
    let a = tenant("affstale", Isolation::Schema);
    drop(pools.acquire(&a).await.expect("a"));
    settle(&pools).await;
    tokio::time::sleep(Duration::from_millis(120)).await;
    let conn = pools.acquire(&a).await.expect("again");
    assert_eq!(conn.query().expect("query"), Some(a.id));
    drop(conn);
    settle(&pools).await;
    let stats = pools.stats();
    assert_eq!((stats.scope_reused, stats.scope_switched), (0, 1));
    assert_eq!(probe.scoped(a.id), 1, "kept again after the checkout");
    tokio::time::sleep(Duration::from_millis(120)).await;
    pools.reap_now();
    pool_engine_support::eventually("the reaper's reset", || probe.resets() == 1).await;
    assert_eq!(
        probe.scoped(a.id),
        0,
        "no idle connection keeps a scope past the window"
    );
    assert_eq!(probe.alive(), 1, "reset, not closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_switch_discards_the_connection_and_the_next_tenant_gets_a_clean_one() {
    let (pools, probe) = engine_with(keeping(), config(2, 2));
    let a = tenant("afffaila", Isolation::Schema);
    let b = tenant("afffailb", Isolation::Schema);
    let first = pools.acquire(&a).await.expect("a");
    let first_id = first.id();
    drop(first);
    settle(&pools).await;
    probe.fail_next_applies(1);
    let conn = pools.acquire(&b).await.expect("b after a retry");
    assert_ne!(
        conn.id(),
        first_id,
        "the connection whose switch failed is gone"
    );
    assert_eq!(conn.query().expect("query"), Some(b.id));
    assert_eq!(
        probe.scoped(a.id),
        0,
        "a's scope closed with its connection"
    );
    assert_eq!(probe.stale_scopes(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_switch_never_hands_out_the_half_switched_connection() {
    let connector = keeping().with_scope_latency(Duration::from_millis(200));
    let (pools, probe) = engine_with(connector, config(1, 1));
    let a = tenant("affcancela", Isolation::Schema);
    let b = tenant("affcancelb", Isolation::Schema);
    drop(pools.acquire(&a).await.expect("a"));
    settle(&pools).await;
    let cancelled = tokio::time::timeout(Duration::from_millis(20), pools.acquire(&b)).await;
    assert!(cancelled.is_err(), "the switch was still on its way");
    settle(&pools).await;
    assert_eq!(
        probe.alive(),
        0,
        "the half-switched connection was discarded"
    );
    // a does not find its old connection (nor b's scope on a new one).
    let conn = pools.acquire(&a).await.expect("a again");
    assert_eq!(conn.query().expect("query"), Some(a.id));
    assert_eq!(probe.scoped(b.id), 0);
    assert_eq!(pools.stats().scope_reused, 0);
    assert_eq!(probe.stale_scopes(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_connector_will_not_keep_is_reset_on_return() {
    let (pools, probe) = engine_with(FakeConnector::new(), config(2, 2));
    let a = tenant("affnokeep", Isolation::Schema);
    for _ in 0..10 {
        drop(pools.acquire(&a).await.expect("a"));
        settle(&pools).await;
    }
    assert_eq!(probe.resets(), 10);
    assert_eq!(pools.stats().scope_reused, 0);
    assert_eq!(probe.scoped(a.id), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_kept_connection_is_not_reused() {
    let (pools, probe) = engine_with(keeping(), config(2, 2));
    let a = tenant("affbroken", Isolation::Schema);
    drop(pools.acquire(&a).await.expect("a"));
    settle(&pools).await;
    probe.kill_all();
    // The kept connection is handed back with no call: its first query fails, and the one
    // after that is on a new connection, since a connection that failed is not kept.
    let conn = pools.acquire(&a).await.expect("a");
    assert!(conn.query().is_err());
    drop(conn);
    settle(&pools).await;
    let conn = pools.acquire(&a).await.expect("a after");
    assert_eq!(conn.query().expect("query"), Some(a.id));
}
