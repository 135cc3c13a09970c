//! The caps against the real Postgres: 1,000 database-isolated tenants, 200 concurrent
//! tasks, a global cap of 40 and a per-tenant cap of 5. `pg_stat_activity` (filtered to the
//! test's `application_name`) and the engine's own counts are sampled throughout.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod pool_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pool_support::{HEAVY, PgFixture, Sessions, config, settle};
use tenant_manager_core::Isolation;

const TENANTS: usize = 1_000;
const TASKS: usize = 200;
const CHECKOUTS_PER_TASK: usize = 10;
const MAX_TOTAL: u32 = 40;
const MAX_PER_TENANT: u32 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_tenants_stay_within_forty_connections_and_five_each() {
    let _heavy = HEAVY.lock().await;
    let mut fixture = PgFixture::new().await;
    let tenants = Arc::new(fixture.tenants(TENANTS, Isolation::Database).await);
    let pools = fixture
        .pools(config(MAX_TOTAL, MAX_PER_TENANT).with_acquire_timeout(Duration::from_secs(120)));

    let done = Arc::new(AtomicBool::new(false));
    let server = {
        let (mut sampler, done) = (fixture.sampler().await, Arc::clone(&done));
        tokio::spawn(async move {
            let (mut samples, mut peak) = (
                0_u32,
                Sessions {
                    total: 0,
                    max_per_role: 0,
                },
            );
            while !done.load(Ordering::SeqCst) {
                let now = sampler.sample().await;
                assert!(now.total <= i64::from(MAX_TOTAL), "server sessions {now:?}");
                assert!(
                    now.max_per_role <= i64::from(MAX_PER_TENANT),
                    "one tenant {now:?}"
                );
                peak.total = peak.total.max(now.total);
                peak.max_per_role = peak.max_per_role.max(now.max_per_role);
                samples += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (samples, peak)
        })
    };
    let engine = {
        let (pools, done) = (pools.clone(), Arc::clone(&done));
        tokio::spawn(async move {
            let mut samples = 0_u32;
            while !done.load(Ordering::SeqCst) {
                let stats = pools.stats();
                assert!(stats.open <= MAX_TOTAL, "engine open {}", stats.open);
                for pool in &stats.per_pool {
                    assert!(pool.open <= MAX_PER_TENANT, "engine pool {pool:?}");
                }
                samples += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            samples
        })
    };

    let mut tasks = Vec::with_capacity(TASKS);
    for task in 0..TASKS {
        let (pools, tenants) = (pools.clone(), Arc::clone(&tenants));
        tasks.push(tokio::spawn(async move {
            for round in 0..CHECKOUTS_PER_TASK {
                // Every other checkout goes to one of eight hot tenants, so tenants reach
                // their own cap; the rest spread over all thousand.
                let pick = if round % 2 == 0 {
                    task % 8
                } else {
                    (task * 7919 + round * 104_729) % TENANTS
                };
                let tenant = &tenants[pick];
                let mut conn = pools.acquire(tenant).await?;
                let (user,): (String,) =
                    sqlx::query_as("SELECT current_user::text FROM pg_sleep(0.002)")
                        .fetch_one(&mut *conn)
                        .await
                        .map_err(|e| {
                            tenant_manager_postgres::map_sqlx(
                                tenant_manager_core::Entity::Tenant,
                                e,
                            )
                        })?;
                assert_eq!(user, format!("tenant_{}", tenant.slug), "own login role");
            }
            Ok::<_, tenant_manager_core::Error>(())
        }));
    }
    for task in tasks {
        task.await
            .expect("task joined")
            .expect("every task finishes");
    }
    done.store(true, Ordering::SeqCst);
    let (server_samples, peak) = server.await.expect("server sampler");
    let engine_samples = engine.await.expect("engine sampler");
    assert!(server_samples > 10 && engine_samples > 10);
    settle(&pools).await;
    let stats = pools.stats();
    eprintln!(
        "caps: peak server sessions {peak:?} over {server_samples} samples; opened {}, \
         evictions {}, waits {}",
        stats.connections_opened, stats.evictions, stats.waits
    );
    assert!(
        stats.connections_opened > u64::from(MAX_TOTAL),
        "connections were recycled"
    );
    assert!(stats.evictions > 0);
    assert_eq!(stats.timeouts, 0);
    assert!(stats.open <= MAX_TOTAL);
}
