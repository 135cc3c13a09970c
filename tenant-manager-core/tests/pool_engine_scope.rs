//! Tenant scope on shared pools when connections keep no scope (the fake connector's default):
//! set on every checkout, reset on return, never leaked, also after failures and cancellations
//! (fake connector, no database).
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod pool_engine_support;

use std::time::Duration;

use pool_engine_support::{config, engine, engine_with, eventually, settle, tenant};
use tenant_manager_core::Isolation;
use tenant_manager_core::pool::TenantPools;
use tenant_manager_core::pool::fake::FakeConnector;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn interleaved_checkouts_see_only_their_own_scope() {
    let (pools, probe) = engine(config(4, 4), Duration::ZERO);
    let a = tenant("scopea", Isolation::Schema);
    let b = tenant("scopeb", Isolation::Shared);
    for round in 0..200 {
        let conn_a = pools.acquire(&a).await.expect("a");
        let conn_b = pools.acquire(&b).await.expect("b");
        assert_eq!(
            conn_a.query().expect("query a"),
            Some(a.id),
            "round {round}"
        );
        assert_eq!(
            conn_b.query().expect("query b"),
            Some(b.id),
            "round {round}"
        );
        if round % 2 == 0 {
            drop(conn_a);
            drop(conn_b);
        } else {
            drop(conn_b);
            drop(conn_a);
        }
    }
    settle(&pools).await;
    assert_eq!(
        probe.stale_scopes(),
        0,
        "every reused connection had been reset"
    );
    assert!(probe.resets() >= 399, "resets {}", probe.resets());
    assert!(
        probe.opened() <= 4,
        "connections were reused: {}",
        probe.opened()
    );
    assert_eq!((probe.scoped(a.id), probe.scoped(b.id)), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_whose_reset_fails_is_discarded() {
    let (pools, probe) = engine(config(4, 4), Duration::ZERO);
    let a = tenant("resetfail", Isolation::Schema);
    let conn = pools.acquire(&a).await.expect("a");
    let first = conn.id();
    probe.fail_next_resets(1);
    drop(conn);
    settle(&pools).await;
    assert_eq!(
        probe.alive(),
        0,
        "the connection with a scope on it was closed"
    );
    let second = pools.acquire(&a).await.expect("again");
    assert_ne!(second.id(), first);
    assert_eq!(second.query().expect("query"), Some(a.id));
    drop(second);
    settle(&pools).await;
    assert_eq!(probe.alive(), 1, "a good reset keeps the connection");
    assert_eq!(probe.stale_scopes(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_scope_change_discards_the_connection_and_retries() {
    let (pools, probe) = engine(config(4, 4), Duration::ZERO);
    let a = tenant("applyfail", Isolation::Shared);
    drop(pools.acquire(&a).await.expect("warm"));
    settle(&pools).await;
    probe.fail_next_applies(1);
    let conn = pools
        .acquire(&a)
        .await
        .expect("served by another connection");
    assert_eq!(conn.query().expect("query"), Some(a.id));
    assert_eq!(probe.opened(), 2, "the failed connection was replaced");
    drop(conn);
    settle(&pools).await;
    assert_eq!(probe.alive(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_cancelled_while_setting_the_scope_never_reaches_anyone() {
    let connector = FakeConnector::new().with_scope_latency(Duration::from_millis(200));
    let (pools, probe) = engine_with(connector, config(4, 4));
    let a = tenant("cancela", Isolation::Schema);
    let cancelled = tokio::time::timeout(Duration::from_millis(20), pools.acquire(&a)).await;
    assert!(cancelled.is_err(), "cancelled mid-checkout");
    settle(&pools).await;
    assert_eq!(
        probe.alive(),
        0,
        "the half-scoped connection was closed, not pooled"
    );
    assert_eq!(probe.scoped(a.id), 0);
    assert_eq!(pools.stats().in_use, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_cancelled_mid_query_still_resets_its_connection() {
    let (pools, probe) = engine(config(4, 4), Duration::ZERO);
    let a = tenant("midquerya", Isolation::Schema);
    let b = tenant("midqueryb", Isolation::Schema);
    let task = {
        let (pools, a) = (pools.clone(), a.clone());
        tokio::spawn(async move {
            let _conn = pools.acquire(&a).await.expect("a");
            std::future::pending::<()>().await;
        })
    };
    eventually("a holds a connection", || probe.scoped(a.id) == 1).await;
    task.abort();
    assert!(task.await.is_err_and(|e| e.is_cancelled()));
    settle(&pools).await;
    assert_eq!(probe.scoped(a.id), 0, "a's scope was reset");
    let conn = pools.acquire(&b).await.expect("b");
    assert_eq!(conn.query().expect("query"), Some(b.id));
    assert_eq!(probe.opened(), 1, "b reuses a's reset connection");
    assert_eq!(probe.stale_scopes(), 0);
}

#[test]
fn returns_and_closes_outside_a_runtime_are_safe() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let connector = FakeConnector::new();
    let probe = connector.probe().clone();
    let pools = runtime.block_on(async { TenantPools::new(connector, config(2, 2)) });
    let pools = pools.expect("engine");
    let a = tenant("noruntime", Isolation::Shared);
    let conn = runtime.block_on(pools.acquire(&a)).expect("a");
    assert_eq!(probe.alive(), 1);
    // No runtime here: the reset cannot run, so the connection must not be reused.
    drop(conn);
    assert_eq!(probe.alive(), 0);
    assert_eq!(pools.stats().in_use, 0);
    // An idle connection, then the pools closed with no runtime around: no panic, and the
    // connection closes with its pool.
    runtime.block_on(async {
        drop(pools.acquire(&a).await.expect("a again"));
        pool_engine_support::settle(&pools).await;
    });
    assert_eq!(probe.alive(), 1);
    pools.close_all();
    assert_eq!((probe.alive(), pools.stats().pools), (0, 0));
}
