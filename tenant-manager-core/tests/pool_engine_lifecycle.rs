//! Pool life cycle: LRU and idle eviction, the reaper, closing tenants, recovery from broken
//! connections and failing connects, metrics (fake connector, no database).
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod pool_engine_support;

use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use pool_engine_support::{config, engine, eventually, settle, tenant, tenants};
use tenant_manager_core::pool::fake::FakeConnector;
use tenant_manager_core::pool::{PoolKey, TenantPools};
use tenant_manager_core::{Isolation, PoolManager, TenantStatus};

fn pool_name(tenant: &tenant_manager_core::Tenant) -> String {
    FakeConnector::pool_name(tenant)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_least_recently_used_idle_pool_makes_room() {
    let (pools, probe) = engine(config(3, 3), Duration::ZERO);
    let ts = tenants("lru", 4, Isolation::Database);
    for t in &ts[..3] {
        drop(pools.acquire(t).await.expect("warm"));
        // The LRU clock ticks in milliseconds.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    // Touch the oldest again: now ts[1] is the least recently used.
    drop(pools.acquire(&ts[0]).await.expect("touch"));
    assert_eq!(probe.alive(), 3);
    let conn = pools.acquire(&ts[3]).await.expect("room was made");
    drop(conn);
    let stats = pools.stats();
    assert_eq!(stats.evictions, 1);
    assert_eq!(
        probe.alive_in(&pool_name(&ts[1])),
        0,
        "the LRU pool was closed"
    );
    for t in [&ts[0], &ts[2], &ts[3]] {
        assert_eq!(probe.alive_in(&pool_name(t)), 1);
    }
    assert!(!stats.per_pool.iter().any(|p| p.tenant == Some(ts[1].id)));
    assert_eq!(stats.pools, 3);
    assert!(probe.peak_alive() <= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_of_a_busy_pool_can_be_evicted() {
    let (pools, probe) = engine(config(2, 2), Duration::ZERO);
    let [busy, other] = ["busyidle", "otheridle"].map(|s| tenant(s, Isolation::Database));
    let held = pools.acquire(&busy).await.expect("held");
    drop(pools.acquire(&busy).await.expect("second, returned idle"));
    assert_eq!(probe.alive_in(&pool_name(&busy)), 2);
    let conn = pools
        .acquire(&other)
        .await
        .expect("one idle connection made room");
    assert_eq!(probe.alive_in(&pool_name(&busy)), 1, "the held one stays");
    assert_eq!(pools.stats().evictions, 1);
    let busy_stats = pools
        .stats()
        .per_pool
        .into_iter()
        .find(|p| p.tenant == Some(busy.id))
        .expect("busy pool stays");
    assert_eq!(
        (busy_stats.open, busy_stats.in_use, busy_stats.idle),
        (1, 1, 0)
    );
    drop((held, conn));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reaper_closes_idle_pools() {
    let idle = config(10, 2)
        .with_idle_timeout(Duration::from_millis(50))
        .with_reaper_interval(Duration::from_millis(10));
    let (pools, probe) = engine(idle, Duration::ZERO);
    let [a, s] = [
        ("reapdb", Isolation::Database),
        ("reapsh", Isolation::Shared),
    ]
    .map(|(slug, isolation)| tenant(slug, isolation));
    drop(pools.acquire(&a).await.expect("a"));
    drop(pools.acquire(&s).await.expect("s"));
    settle(&pools).await;
    assert_eq!(pools.stats().pools, 2);
    eventually("idle pools closed", || pools.stats().pools == 0).await;
    let stats = pools.stats();
    assert_eq!(stats.idle_pools_closed, 2);
    assert_eq!((stats.open, probe.alive()), (0, 0));
}

#[test]
fn the_reaper_stops_when_the_engine_is_dropped() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let tasks = tokio::runtime::Handle::current().metrics();
        assert_eq!(tasks.num_alive_tasks(), 0);
        let (pools, probe) = engine(config(2, 2), Duration::ZERO);
        assert_eq!(tasks.num_alive_tasks(), 1, "one reaper task");
        let a = tenant("reaperstop", Isolation::Database);
        drop(pools.acquire(&a).await.expect("a"));
        drop(pools);
        assert_eq!(
            probe.alive(),
            0,
            "dropping the engine closed its connections"
        );
        eventually("the reaper stopped", || tasks.num_alive_tasks() == 0).await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_tenant_closes_idle_connections_now_and_busy_ones_on_return() {
    let (pools, probe) = engine(config(10, 3), Duration::ZERO);
    let a = tenant("closeme", Isolation::Database);
    let held = pools.acquire(&a).await.expect("held");
    drop(pools.acquire(&a).await.expect("idle"));
    assert_eq!(probe.alive_in(&pool_name(&a)), 2);
    pools.close_tenant(a.id).await.expect("closed");
    assert_eq!(
        probe.alive_in(&pool_name(&a)),
        1,
        "the idle one closed at once"
    );
    assert_eq!(pools.stats().pools, 0);
    drop(held);
    assert_eq!(
        probe.alive_in(&pool_name(&a)),
        0,
        "the busy one closed on return"
    );
    pools
        .close_tenant(a.id)
        .await
        .expect("closing twice is fine");
    let again = pools.acquire(&a).await.expect("a new pool");
    assert_eq!(pools.stats().pools, 1);
    drop(again);
    let shared = tenant("closeshared", Isolation::Shared);
    drop(pools.acquire(&shared).await.expect("shared"));
    settle(&pools).await;
    let key = PoolKey::Shared(pool_name(&shared).into());
    assert!(pools.close_pool(&key));
    assert_eq!(probe.alive_in(&pool_name(&shared)), 0);
    pools.close_all();
    assert_eq!((pools.stats().pools, probe.alive()), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_connections_are_replaced_after_a_restart() {
    let (pools, probe) = engine(config(10, 3), Duration::ZERO);
    let ts = [
        tenant("restartdb", Isolation::Database),
        tenant("restartsc", Isolation::Schema),
        tenant("restartsh", Isolation::Shared),
    ];
    for t in &ts {
        drop(pools.acquire(t).await.expect("warm"));
    }
    settle(&pools).await;
    let before = probe.opened();
    probe.kill_all();
    for t in &ts {
        let conn = pools.acquire(t).await.expect("healed");
        conn.query().expect("the new connection works");
    }
    settle(&pools).await;
    assert!(probe.opened() > before, "new connections were opened");
    assert_eq!(pools.stats().timeouts, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_connect_reports_its_cause_at_once() {
    // A long timeout: if the failure were not reported, the acquire would end in
    // pool_exhausted after 30 s instead.
    let slow = config(4, 2).with_acquire_timeout(Duration::from_secs(30));
    let (pools, probe) = engine(slow, Duration::ZERO);
    let a = tenant("refused", Isolation::Database);
    probe.fail_next_connects(1);
    let err = pools.acquire(&a).await.err().map(|e| e.code());
    assert_eq!(err, Some("backend_unavailable"));
    drop(pools.acquire(&a).await.expect("the next connect works"));
    assert_eq!(pools.stats().open, 1);
}

#[tokio::test]
async fn only_active_tenants_get_connections() {
    let (pools, probe) = engine(config(4, 2), Duration::ZERO);
    let mut a = tenant("notactive", Isolation::Database);
    a.status = TenantStatus::Suspended;
    let err = pools.acquire(&a).await.err().map(|e| e.code());
    assert_eq!(err, Some("tenant_suspended"));
    a.status = TenantStatus::Provisioning;
    let err = pools.acquire(&a).await.err().map(|e| e.code());
    assert_eq!(err, Some("tenant_not_ready"));
    assert_eq!((probe.opened(), pools.stats().pools), (0, 0));
}

#[test]
fn counts_are_published_as_metrics() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let connector = FakeConnector::new();
    let pools: TenantPools<FakeConnector> = metrics::with_local_recorder(&recorder, || {
        let _guard = runtime.enter();
        TenantPools::new(connector, config(1, 1)).expect("engine")
    });
    let [a, b] = ["metrica", "metricb"].map(|s| tenant(s, Isolation::Database));
    // Each snapshot reads the values and starts counters from zero again.
    let snapshot = || {
        let values = snapshotter.snapshot().into_vec();
        move |name: &str, label: Option<&str>| {
            values
                .iter()
                .find(|(key, ..)| {
                    key.key().name() == name
                        && label.is_none_or(|l| key.key().labels().any(|x| x.value() == l))
                })
                .map(|(.., value)| match value {
                    DebugValue::Counter(n) => *n as f64,
                    DebugValue::Gauge(g) => g.into_inner(),
                    DebugValue::Histogram(_) => f64::NAN,
                })
        }
    };
    let gauge = Some;
    let counter = |value: u64| Some(value as f64);
    runtime.block_on(async {
        let held = pools.acquire(&a).await.expect("a");
        let value = snapshot();
        assert_eq!(value("database_connections", Some("in_use")), gauge(1.0));
        assert_eq!(value("database_connections", Some("idle")), gauge(0.0));
        assert_eq!(value("tenant_pools_open", None), gauge(1.0));
        assert_eq!(value("database_connections_total", None), counter(1));
        drop(held);
        let value = snapshot();
        assert_eq!(value("database_connections", Some("in_use")), gauge(0.0));
        assert_eq!(value("database_connections", Some("idle")), gauge(1.0));
        drop(pools.acquire(&b).await.expect("b evicts a"));
        let value = snapshot();
        assert_eq!(value("database_connections_total", None), counter(1));
        assert_eq!(value("tenant_pool_evictions_total", None), counter(1));
        assert_eq!(value("tenant_pool_waits_total", None), counter(1));
        assert_eq!(value("tenant_pool_timeouts_total", None), counter(0));
        assert_eq!(value("database_connections", Some("idle")), gauge(1.0));
    });
}
