//! The cluster connection budget with the fake connector and the in-memory leases: the
//! in-memory leases pass the conformance suite, and three engines sharing one server's budget
//! never hold more connections together than the budget, while three engines with only their
//! local caps do; a connection's slot comes back only once its close has finished (a backend
//! still exiting counts), and a connect given up on keeps its slot until it is finished and
//! closed.
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
fn engines(
    leases: Option<&InMemoryConnectionLeases>,
) -> Vec<(TenantPools<FakeConnector>, FakeProbe)> {
    let leases = leases.map(|l| Arc::new(l.clone()) as Arc<dyn ConnectionLeases>);
    engines_closing_in(leases, Duration::ZERO)
}

/// As [`engines`], with connections whose close takes `close` (their backend still counted
/// alive meanwhile).
fn engines_closing_in(
    leases: Option<Arc<dyn ConnectionLeases>>,
    close: Duration,
) -> Vec<(TenantPools<FakeConnector>, FakeProbe)> {
    (0..3)
        .map(|i| {
            let connector = FakeConnector::new()
                .with_connect_latency(Duration::from_millis(1))
                .with_close_latency(close);
            let probe = connector.probe().clone();
            let config = config(8, 2).with_acquire_timeout(Duration::from_secs(10));
            let pools = match &leases {
                Some(leases) => TenantPools::new_clustered(
                    connector,
                    config,
                    ClusterBudget::new(Arc::clone(leases), format!("engine-{i}"))
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
    let held = leases
        .held(&ServerId::default_server())
        .await
        .expect("held");
    assert!(held as usize <= BUDGET, "{held} slots leased");
}

/// Connections that take a while to close (idle ones reaped or evicted on contention, broken
/// ones, those returned while over the share): the engines still stay within the budget,
/// counting every connection until its close has finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slot_comes_back_only_once_its_connection_is_closed() {
    let leases = InMemoryConnectionLeases::new();
    let engines = engines_closing_in(Some(Arc::new(leases.clone())), Duration::from_millis(8));
    let peak = peak_under_load(&engines).await;
    println!("peak with the cluster budget and 8 ms closes: {peak}");
    assert!(
        peak <= BUDGET,
        "{peak} connections alive or closing, budget {BUDGET}"
    );
    assert!(peak > 0);
    // Every slot comes back once the closes are done: nothing leaks.
    drop(engines);
    for _ in 0..100 {
        if leases
            .held(&ServerId::default_server())
            .await
            .expect("held")
            == 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        leases
            .held(&ServerId::default_server())
            .await
            .expect("held"),
        0,
        "slots still leased after the engines stopped"
    );
}

/// Leases that answer after a round trip's delay (as Redis does): a slot the heartbeat hands
/// back is no longer this engine's while the call is under way, so no connect of the engine
/// uses it while another engine already got it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slot_handed_back_is_not_used_while_the_call_is_under_way() {
    let leases = Flaky {
        delay: Duration::from_millis(2),
        ..Flaky::default()
    };
    let engines = engines_closing_in(Some(Arc::new(leases.clone())), Duration::ZERO);
    let peak = peak_under_load(&engines).await;
    println!("peak with the cluster budget and 2 ms lease calls: {peak}");
    assert!(peak <= BUDGET, "{peak} connections alive, budget {BUDGET}");
    assert!(peak > 0);
}

/// A connect whose checkout gave up (its acquire timed out) keeps its slot until it has
/// finished and its connection is closed: another engine gets no slot meanwhile, then does.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_connect_given_up_on_keeps_its_slot_until_closed() {
    let leases = InMemoryConnectionLeases::new();
    let engine = |name: &str, connect: Duration, timeout: Duration| {
        let connector = FakeConnector::new().with_connect_latency(connect);
        let probe = connector.probe().clone();
        let pools = TenantPools::new_clustered(
            connector,
            config(4, 2).with_acquire_timeout(timeout),
            ClusterBudget::new(Arc::new(leases.clone()), name)
                .with_server(ServerId::default_server(), 1)
                .with_lease_ttl(Duration::from_millis(300)),
        )
        .expect("engine");
        (pools, probe)
    };
    let (slow, slow_probe) = engine(
        "slow",
        Duration::from_millis(1_500),
        Duration::from_millis(100),
    );
    let (other, other_probe) = engine("other", Duration::ZERO, Duration::from_millis(300));
    let tenants = tenants("gvu", 2, Isolation::Database);
    let gave_up = slow.acquire(&tenants[0]).await;
    assert!(gave_up.is_err(), "{gave_up:?}");
    assert_eq!(
        slow_probe.opened(),
        0,
        "the slow connect is still under way"
    );
    let refused = other.acquire(&tenants[1]).await;
    assert!(
        matches!(
            refused,
            Err(tenant_manager_core::Error::PoolExhausted { .. })
        ),
        "the slot of the connect under way was handed on: {refused:?}"
    );
    assert_eq!(other_probe.opened(), 0);
    for _ in 0..200 {
        if slow_probe.opened() == 1 && slow_probe.alive() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(slow_probe.opened(), 1, "the connect finished");
    assert_eq!(slow_probe.alive(), 0, "and its connection was closed");
    let mut got = None;
    for _ in 0..20 {
        if let Ok(conn) = other.acquire(&tenants[1]).await {
            got = Some(conn);
            break;
        }
    }
    assert!(
        got.is_some(),
        "the slot came back once the connection closed"
    );
    assert_eq!(slow_probe.alive() + other_probe.alive(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn engines_with_local_caps_only_exceed_the_budget() {
    let engines = engines(None);
    let peak = peak_under_load(&engines).await;
    println!("peak with local caps only: {peak}");
    assert!(peak > BUDGET, "{peak} connections alive");
}

/// In-memory leases that answer `Unavailable` while `down` is set (Redis unreachable).
#[derive(Debug, Clone, Default)]
struct Flaky {
    inner: InMemoryConnectionLeases,
    down: Arc<AtomicBool>,
    /// How long every call takes before it is answered.
    delay: Duration,
}

impl Flaky {
    async fn check(&self) -> tenant_manager_core::Result<()> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        if self.down.load(Ordering::SeqCst) {
            return Err(tenant_manager_core::Error::unavailable("leases", "down"));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl ConnectionLeases for Flaky {
    async fn acquire(
        &self,
        server: &ServerId,
        holder: &str,
        want: u32,
        budget: u32,
        ttl: Duration,
    ) -> tenant_manager_core::Result<tenant_manager_core::LeaseGrant> {
        self.check().await?;
        self.inner.acquire(server, holder, want, budget, ttl).await
    }
    async fn renew(
        &self,
        server: &ServerId,
        holder: &str,
        ttl: Duration,
    ) -> tenant_manager_core::Result<tenant_manager_core::LeaseGrant> {
        self.check().await?;
        self.inner.renew(server, holder, ttl).await
    }
    async fn release(
        &self,
        server: &ServerId,
        holder: &str,
        count: u32,
    ) -> tenant_manager_core::Result<u32> {
        self.check().await?;
        self.inner.release(server, holder, count).await
    }
    async fn held(&self, server: &ServerId) -> tenant_manager_core::Result<u32> {
        self.check().await?;
        self.inner.held(server).await
    }
}

/// With the leases unreachable, an engine keeps its share only until its lease time has
/// passed, then falls to a share of zero: its idle connections close, a connection returned
/// then closes, and no new one opens; once the leases answer again, it opens connections
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_leases_an_engine_falls_back_to_a_share_of_zero() {
    let leases = Flaky::default();
    let connector = FakeConnector::new();
    let probe = connector.probe().clone();
    let pools = TenantPools::new_clustered(
        connector,
        config(8, 2).with_acquire_timeout(Duration::from_millis(300)),
        ClusterBudget::new(Arc::new(leases.clone()), "flaky")
            .with_server(ServerId::default_server(), 3)
            .with_lease_ttl(Duration::from_millis(300)),
    )
    .expect("engine");
    let tenants = tenants("flk", 3, Isolation::Database);
    let idle = pools.acquire(&tenants[0]).await.expect("acquire");
    let held = pools.acquire(&tenants[1]).await.expect("acquire");
    drop(idle);
    assert_eq!(probe.alive(), 2);

    leases.down.store(true, Ordering::SeqCst);
    for _ in 0..200 {
        if pools.cluster_share(&ServerId::default_server()) == Some(0) && probe.alive() <= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(pools.cluster_share(&ServerId::default_server()), Some(0));
    assert_eq!(
        probe.alive(),
        1,
        "the idle connection closed; the checked-out one is in use"
    );
    let refused = pools.acquire(&tenants[2]).await;
    assert!(
        matches!(
            refused,
            Err(tenant_manager_core::Error::PoolExhausted { .. })
        ),
        "{refused:?}"
    );
    drop(held);
    for _ in 0..100 {
        if probe.alive() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        probe.alive(),
        0,
        "a connection returned without a slot is closed"
    );

    leases.down.store(false, Ordering::SeqCst);
    let back = pools
        .acquire(&tenants[2])
        .await
        .expect("acquire once the leases answer");
    assert_eq!(probe.alive(), 1);
    drop(back);
}
