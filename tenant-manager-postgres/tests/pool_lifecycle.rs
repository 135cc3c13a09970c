//! Pool life cycle against the real Postgres: tenant roles, LRU and idle eviction seen in
//! `stats()` and `pg_stat_activity`, closing a tenant, and recovery after
//! `pg_terminate_backend` mid-run.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod pool_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use pool_support::{HEAVY, PgFixture, config, settle};
use tenant_manager_core::{Isolation, PoolManager, Tenant};
use tenant_manager_postgres::PgTenantPools;

async fn current_user(pools: &PgTenantPools, tenant: &Tenant) -> String {
    let mut conn = pools.acquire(tenant).await.expect("checkout");
    let (user,): (String,) = sqlx::query_as("SELECT current_user::text")
        .fetch_one(&mut *conn)
        .await
        .expect("query");
    user
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn database_tenants_use_their_own_role_and_close_with_the_tenant() {
    let mut fixture = PgFixture::new().await;
    let tenants = fixture.tenants(2, Isolation::Database).await;
    let pools = fixture.pools(config(4, 2));
    for tenant in &tenants {
        assert_eq!(
            current_user(&pools, tenant).await,
            format!("tenant_{}", tenant.slug)
        );
    }
    let held = pools.acquire(&tenants[0]).await.expect("held");
    // A second connection of tenant 0, returned idle.
    current_user(&pools, &tenants[0]).await;
    let mut sampler = fixture.sampler().await;
    assert_eq!(sampler.sample().await.total, 3);
    pools.close_tenant(tenants[0].id).await.expect("close");
    sampler
        .until("idle sessions closed", |s| s.total == 2)
        .await;
    drop(held);
    sampler
        .until("the busy session closed on return", |s| s.total == 1)
        .await;
    let stats = pools.stats();
    assert_eq!((stats.pools, stats.open), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lru_and_idle_eviction_show_in_stats_and_on_the_server() {
    let mut fixture = PgFixture::new().await;
    let tenants = fixture.tenants(3, Isolation::Database).await;
    let idle = config(2, 2)
        .with_idle_timeout(Duration::from_millis(300))
        .with_reaper_interval(Duration::from_millis(50));
    let pools = fixture.pools(idle);
    let mut sampler = fixture.sampler().await;
    current_user(&pools, &tenants[0]).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    current_user(&pools, &tenants[1]).await;
    assert_eq!(sampler.sample().await.total, 2);
    // The budget is spent: the least recently used pool (tenant 0) makes room.
    current_user(&pools, &tenants[2]).await;
    let stats = pools.stats();
    assert_eq!(stats.evictions, 1);
    assert!(
        !stats
            .per_pool
            .iter()
            .any(|p| p.tenant == Some(tenants[0].id))
    );
    assert_eq!(stats.per_pool.len(), 2);
    let sessions = sampler.until("two sessions", |s| s.total == 2).await;
    assert_eq!(sessions.max_per_role, 1);
    // Idle pools close after the idle timeout.
    sampler.until("idle pools closed", |s| s.total == 0).await;
    let stats = pools.stats();
    assert_eq!((stats.pools, stats.open), (0, 0));
    assert_eq!(stats.idle_pools_closed, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checkouts_recover_after_the_server_terminates_every_session() {
    let _heavy = HEAVY.lock().await;
    let mut fixture = PgFixture::new().await;
    let mut tenants = fixture.tenants(4, Isolation::Database).await;
    tenants.extend(fixture.tenants(2, Isolation::Schema).await);
    tenants.extend(fixture.tenants(2, Isolation::Shared).await);
    let pools = fixture.pools(config(10, 2));
    let tenants = Arc::new(tenants);

    let stop = Arc::new(AtomicBool::new(false));
    let failed_queries = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for worker in 0..8 {
        let (pools, tenants, stop, failed) = (
            pools.clone(),
            Arc::clone(&tenants),
            Arc::clone(&stop),
            Arc::clone(&failed_queries),
        );
        workers.push(tokio::spawn(async move {
            let mut round = 0;
            while !stop.load(Ordering::SeqCst) {
                let tenant = &tenants[(worker + round) % tenants.len()];
                round += 1;
                let Ok(mut conn) = pools.acquire(tenant).await else {
                    failed.fetch_add(1, Ordering::SeqCst);
                    continue;
                };
                // Queries in flight when the sessions are terminated fail; that is expected.
                if sqlx::query("SELECT pg_sleep(0.002)")
                    .execute(&mut *conn)
                    .await
                    .is_err()
                {
                    failed.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    // Three times: wait until the workers have sessions open again, then terminate them all.
    for _ in 0..3 {
        let mut terminated = 0;
        for _ in 0..400 {
            terminated = fixture.terminate_all().await;
            if terminated > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(terminated > 0, "the workers opened sessions");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for worker in workers {
        worker.await.expect("worker");
    }
    settle(&pools).await;
    // After the terminations, every tenant's next checkout works.
    for tenant in tenants.iter() {
        let mut conn = pools
            .acquire(tenant)
            .await
            .expect("checkout after terminations");
        sqlx::query("SELECT 1")
            .execute(&mut *conn)
            .await
            .expect("query after terminations");
    }
    let stats = pools.stats();
    eprintln!(
        "recovery: {} failed queries or checkouts during the terminations; opened {}",
        failed_queries.load(Ordering::SeqCst),
        stats.connections_opened
    );
    assert!(stats.open <= 10);
}
