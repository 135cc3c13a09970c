//! Closes this instance's pool of a tenant suspended or deleted anywhere.
//!
//! The manager closes a tenant's pool only in the process that suspends or deletes it. Every
//! change of a tenant is announced through the Redis tenant cache's invalidations, by every
//! server instance and by `tenant-cli`; this task hears them and closes the pool of each
//! invalidated tenant that the registry (never the cache) no longer holds `Active`. When it
//! may have missed invalidations ([`Invalidation::All`]) it re-checks every tenant with an
//! open pool.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::StreamExt;
use tenant_manager::manager::TenantManager;
use tenant_manager::redis::{Invalidation, InvalidationReceiver};
use tenant_manager::{Error, TenantId};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::PoolEngine;

/// Registry reads at once while re-checking every open pool.
const RECHECK_CONCURRENCY: usize = 8;

/// Starts the task (tracked by `tasks`); it stops on `shutdown` or when the cache is gone.
pub(super) fn start(
    invalidations: InvalidationReceiver,
    manager: TenantManager,
    pools: Arc<dyn PoolEngine>,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) {
    let sync = PoolSync { manager, pools };
    let token = shutdown.clone();
    tasks.spawn(async move { sync.run(invalidations, token).await });
}

/// The registry (through the manager) and the pools it keeps in step.
#[derive(Debug)]
struct PoolSync {
    manager: TenantManager,
    pools: Arc<dyn PoolEngine>,
}

impl PoolSync {
    /// Applies invalidations until `shutdown` or the cache is gone. Shutdown also interrupts
    /// the check in progress: the server waits for this task before it closes every pool, so
    /// a re-check of many pools, or a registry that does not answer, must not hold it up.
    async fn run(&self, mut invalidations: InvalidationReceiver, shutdown: CancellationToken) {
        loop {
            let invalidation = tokio::select! {
                () = shutdown.cancelled() => return,
                next = invalidations.recv() => match next {
                    Some(invalidation) => invalidation,
                    None => return,
                },
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.apply(invalidation) => {}
            }
        }
    }

    /// Checks the tenant of `invalidation`, or every tenant with an open pool.
    async fn apply(&self, invalidation: Invalidation) {
        match invalidation {
            Invalidation::Tenant(id) => self.check(id).await,
            // `All`, and whatever a later version adds: re-checking is always safe.
            _ => self.check_open_pools().await,
        }
    }

    /// Re-checks every tenant with a pool of its own open on this instance.
    async fn check_open_pools(&self) {
        let open: BTreeSet<TenantId> = self
            .pools
            .pool_stats()
            .per_pool
            .iter()
            .filter_map(|pool| pool.tenant)
            .collect();
        futures::stream::iter(open)
            .for_each_concurrent(RECHECK_CONCURRENCY, |id| self.check(id))
            .await;
    }

    /// Closes `id`'s pool unless the registry holds the tenant `Active`. When the registry
    /// cannot answer the pool is closed too: it reopens on the next request if the tenant
    /// still serves.
    async fn check(&self, id: TenantId) {
        let status = match self.manager.get(id).await {
            Ok(tenant) if tenant.status.is_serving() => return,
            Ok(tenant) => tenant.status.as_str(),
            Err(Error::NotFound { .. }) => "gone",
            Err(err) => {
                tracing::warn!(tenant = %id, error = %err,
                    "tenant status unknown after an invalidation; closing its pool");
                "unknown"
            }
        };
        match self.pools.close_pool(id).await {
            Ok(()) => tracing::debug!(tenant = %id, status, "closed the pool of a changed tenant"),
            Err(err) => tracing::warn!(tenant = %id, status, error = %err,
                "could not close the pool of a tenant that no longer serves"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Mutex;
    use std::time::Duration;

    use tenant_manager::manager::PoolCloser;
    use tenant_manager::redis::{RedisConfig, RedisPool, RedisTenantCache, TenantCacheConfig};
    use tenant_manager::{
        Isolation, NewTenant, PoolStats, Result, TenantCache, TenantPoolStats, TenantSlug,
        TenantStatus, async_trait,
    };
    use tenant_manager_test_support::TestRedis;

    use super::*;
    use crate::config::Config;
    use crate::readiness::Readiness;
    use crate::services::memory_mode;

    /// Pools open for `open` (and one shared pool) that record which tenants are closed; with
    /// `hang`, closing never finishes (a pool engine or registry that does not answer).
    #[derive(Debug)]
    struct RecordingPools {
        open: Vec<TenantId>,
        closed: Mutex<Vec<TenantId>>,
        hang: bool,
    }

    impl RecordingPools {
        fn new(open: Vec<TenantId>, hang: bool) -> Arc<Self> {
            Arc::new(Self {
                open,
                closed: Mutex::new(Vec::new()),
                hang,
            })
        }

        fn closed(&self) -> Vec<TenantId> {
            self.closed.lock().unwrap().clone()
        }

        /// Waits (at most a generous hang limit) until `id`'s pool is closed.
        async fn wait_closed(&self, id: TenantId) {
            let wait = async {
                while !self.closed().contains(&id) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            };
            tokio::time::timeout(Duration::from_secs(5), wait)
                .await
                .unwrap_or_else(|_| panic!("{id}'s pool was not closed: {:?}", self.closed()));
        }
    }

    #[async_trait]
    impl PoolCloser for RecordingPools {
        async fn close_pool(&self, tenant: TenantId) -> Result<()> {
            self.closed.lock().unwrap().push(tenant);
            if self.hang {
                std::future::pending::<()>().await;
            }
            Ok(())
        }
    }

    impl PoolEngine for RecordingPools {
        fn pool_stats(&self) -> PoolStats {
            let mut stats = PoolStats::default();
            stats.per_pool = self
                .open
                .iter()
                .map(|id| {
                    let mut pool = TenantPoolStats::default();
                    pool.tenant = Some(*id);
                    pool.key = id.to_string();
                    pool
                })
                .collect();
            let mut shared = TenantPoolStats::default();
            shared.key = "default/tenant_shared".to_owned();
            stats.per_pool.push(shared);
            stats
        }

        fn close_all(&self) {}
    }

    /// A tenant taken through the life cycle to `status` (`Active` or `Suspended`).
    async fn tenant(manager: &TenantManager, status: TenantStatus) -> TenantId {
        let slug = TenantSlug::new(format!("t{}", uuid::Uuid::new_v4().simple())).unwrap();
        let registry = manager.registry();
        let id = registry
            .create_tenant(NewTenant::new(slug, "Pool Sync", Isolation::Database).unwrap())
            .await
            .unwrap()
            .id;
        let mut path = vec![TenantStatus::Provisioning, TenantStatus::Active];
        if status == TenantStatus::Suspended {
            path.push(status);
        }
        for to in path {
            registry.transition(id, to, None).await.unwrap();
        }
        id
    }

    /// A subscribed Redis tenant cache (alive as long as the returned `TestRedis`) and an
    /// in-memory manager.
    async fn cache_and_manager() -> (TestRedis, RedisTenantCache, TenantManager) {
        let redis = TestRedis::create().await;
        let pool =
            RedisPool::connect(RedisConfig::new(redis.url()).with_key_prefix(redis.prefix()))
                .await
                .unwrap();
        let cache = RedisTenantCache::new(&pool, TenantCacheConfig::default())
            .await
            .unwrap();
        assert!(cache.wait_subscribed(Duration::from_secs(5)).await);
        let manager = memory_mode::services(
            &Config::default(),
            memory_mode::shared().unwrap(),
            Readiness::default(),
        )
        .unwrap()
        .manager;
        (redis, cache, manager)
    }

    /// Cancels `shutdown` and waits (at most a generous hang limit) for the task to stop.
    async fn stop(tasks: TaskTracker, shutdown: CancellationToken) {
        shutdown.cancel();
        tasks.close();
        tokio::time::timeout(Duration::from_secs(5), tasks.wait())
            .await
            .expect("the task stops on shutdown");
    }

    /// The task started over `cache`'s invalidations, `manager` and `pools`.
    fn started(
        cache: &RedisTenantCache,
        manager: TenantManager,
        pools: &Arc<RecordingPools>,
    ) -> (TaskTracker, CancellationToken) {
        let (tasks, shutdown) = (TaskTracker::new(), CancellationToken::new());
        start(
            cache.subscribe_invalidations(),
            manager,
            pools.clone(),
            &tasks,
            &shutdown,
        );
        (tasks, shutdown)
    }

    #[tokio::test]
    async fn invalidated_tenants_that_no_longer_serve_lose_their_pools_until_shutdown() {
        let (_redis, cache, manager) = cache_and_manager().await;
        let active = tenant(&manager, TenantStatus::Active).await;
        let suspended = tenant(&manager, TenantStatus::Suspended).await;
        let gone = TenantId::new();
        let pools = RecordingPools::new(vec![active, suspended], false);
        let (tasks, shutdown) = started(&cache, manager, &pools);

        // One tenant at a time, in order: the active tenant keeps its pool, a tenant the
        // registry does not know loses it.
        cache.invalidate(active).await.unwrap();
        cache.invalidate(gone).await.unwrap();
        pools.wait_closed(gone).await;
        assert!(!pools.closed().contains(&active), "{:?}", pools.closed());

        // `All` (as after a lag or a reconnection): every open pool is re-checked.
        cache.invalidate_all_local().await.unwrap();
        pools.wait_closed(suspended).await;
        assert!(!pools.closed().contains(&active), "{:?}", pools.closed());

        stop(tasks, shutdown).await;
    }

    #[tokio::test]
    async fn shutdown_interrupts_a_check_that_does_not_finish() {
        let (_redis, cache, manager) = cache_and_manager().await;
        let gone = TenantId::new();
        let pools = RecordingPools::new(vec![gone], true);
        let (tasks, shutdown) = started(&cache, manager, &pools);
        cache.invalidate(gone).await.unwrap();
        // The task is now inside a `close_pool` that never returns.
        pools.wait_closed(gone).await;
        stop(tasks, shutdown).await;
    }
}
