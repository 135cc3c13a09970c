//! The cluster connection budget through a Redis outage, with a private `redis-server` process
//! the test kills and restarts: two engines share one server's budget in it; with Redis gone,
//! each engine's share falls to zero once its lease time has passed (its idle connections
//! close, it opens nothing new, and the two together never hold more than the budget); with
//! Redis back, the budget is usable again.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tenant_manager_core::pool::fake::{FakeConnector, FakeProbe, active_tenant};
use tenant_manager_core::pool::{ClusterBudget, PoolConfig, TenantPools};
use tenant_manager_core::{Error, Isolation, ServerId, Tenant};
use tenant_manager_redis::{RedisConnectionLeases, RedisPool};
use tenant_manager_test_support::PrivateRedis;

const BUDGET: u32 = 4;
const TTL: Duration = Duration::from_millis(600);

struct Instance {
    pools: TenantPools<FakeConnector>,
    probe: FakeProbe,
    tenants: Vec<Tenant>,
}

impl Instance {
    fn share(&self) -> u32 {
        self.pools
            .cluster_share(&ServerId::default_server())
            .expect("budgeted")
    }
}

async fn instance(url: &str, prefix: &str, name: &str) -> Instance {
    let pool = RedisPool::connect(support::fast_failing(url).with_key_prefix(prefix))
        .await
        .expect("redis pool");
    let connector = FakeConnector::new();
    let probe = connector.probe().clone();
    let pools = TenantPools::new_clustered(
        connector,
        PoolConfig::default()
            .with_max_total(8)
            .with_max_per_tenant(2)
            .with_acquire_timeout(Duration::from_millis(300)),
        ClusterBudget::new(Arc::new(RedisConnectionLeases::new(&pool)), name)
            .with_server(ServerId::default_server(), BUDGET)
            .with_lease_ttl(TTL),
    )
    .expect("engine");
    let tenants = (0..4)
        .map(|i| active_tenant(&format!("{name}{i}"), Isolation::Database).expect("tenant"))
        .collect();
    Instance {
        pools,
        probe,
        tenants,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_redis_down_each_share_falls_to_zero_and_comes_back_with_it() {
    let mut redis = PrivateRedis::start();
    let prefix = format!("lo{}:", std::process::id());
    let a = instance(&redis.url(), &prefix, "insta").await;
    let b = instance(&redis.url(), &prefix, "instb").await;

    // The whole budget in use: `a` holds one connection checked out and one idle, `b` two
    // checked out.
    let a_held = a.pools.acquire(&a.tenants[0]).await.expect("acquire");
    let a_idle = a.pools.acquire(&a.tenants[1]).await.expect("acquire");
    drop(a_idle);
    let b_held = [
        b.pools.acquire(&b.tenants[0]).await.expect("acquire"),
        b.pools.acquire(&b.tenants[1]).await.expect("acquire"),
    ];
    assert_eq!(a.probe.alive() + b.probe.alive(), BUDGET as usize);

    // The sum of both instances' connections, sampled until the end.
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (done, peak) = (Arc::clone(&done), Arc::clone(&peak));
        let probes = [a.probe.clone(), b.probe.clone()];
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                peak.fetch_max(probes[0].alive() + probes[1].alive(), Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let opened = (a.probe.opened(), b.probe.opened());

    redis.kill();
    support::eventually(Duration::from_secs(10), "both shares at zero", || async {
        a.share() == 0 && b.share() == 0
    })
    .await;
    support::eventually(
        Duration::from_secs(5),
        "the idle connection closed",
        || async { a.probe.alive() == 1 },
    )
    .await;
    println!(
        "Redis down: shares {} and {}, connections {} and {}",
        a.share(),
        b.share(),
        a.probe.alive(),
        b.probe.alive()
    );
    for (instance, tenant) in [(&a, &a.tenants[2]), (&b, &b.tenants[2])] {
        let refused = instance.pools.acquire(tenant).await;
        assert!(
            matches!(refused, Err(Error::PoolExhausted { .. })),
            "a connect without a share: {refused:?}"
        );
    }
    assert_eq!(
        (a.probe.opened(), b.probe.opened()),
        opened,
        "no connection opened while Redis was down"
    );
    // Connections returned now are closed: their slots may be gone.
    drop(a_held);
    drop(b_held);
    support::eventually(
        Duration::from_secs(5),
        "returned connections closed",
        || async { a.probe.alive() + b.probe.alive() == 0 },
    )
    .await;

    redis.restart();
    support::eventually(Duration::from_secs(10), "a connects again", || async {
        a.pools.acquire(&a.tenants[2]).await.is_ok()
    })
    .await;
    let mut again = Vec::new();
    for instance in [&a, &b] {
        for tenant in &instance.tenants[..2] {
            let mut conn = None;
            for _ in 0..20 {
                if let Ok(c) = instance.pools.acquire(tenant).await {
                    conn = Some(c);
                    break;
                }
            }
            again.push(conn.expect("the budget is usable again"));
        }
    }
    assert_eq!(again.len(), BUDGET as usize);
    assert!(a.share() + b.share() <= BUDGET);
    let refused = b.pools.acquire(&b.tenants[3]).await;
    assert!(
        matches!(refused, Err(Error::PoolExhausted { .. })),
        "beyond the budget: {refused:?}"
    );
    done.store(true, Ordering::SeqCst);
    sampler.await.expect("sampler");
    let peak = peak.load(Ordering::SeqCst);
    println!("peak connections of both instances: {peak}");
    assert!(
        peak <= BUDGET as usize,
        "{peak} connections, budget {BUDGET}"
    );
    drop(again);
}
