//! # tenant-manager-redis
//!
//! Redis adapters of tenant-manager, sharing one connection pool:
//!
//! - [`RedisQuotaEnforcer`]: rate limits with GCRA in a Lua script (one round trip per
//!   check, timed by the server's clock) or, with [`RateLeaseConfig`], from budgets each
//!   instance leases out of Redis and spends in process, within a documented bound; atomic
//!   usage quotas; configurable fail-open or fail-closed when Redis is unreachable.
//! - [`RedisTenantCache`]: tenant records in Redis with a TTL, fronted by an in-process cache;
//!   invalidations are published so every instance drops its copy at once.
//! - [`RedisJobQueue`]: a durable at-least-once queue on Streams with a consumer group:
//!   reclaim after a visibility timeout, delayed retries, dead letters with the last error,
//!   and pruning of consumers that are gone (idle, nothing pending) from the group.
//! - [`RedisEventBus`]: tenant events on a Stream, live to every subscription across
//!   instances; [`RedisEventGroup`]s deliver each event once per consumer group, at least
//!   once, with redelivery after a visibility timeout and dead letters.
//! - [`RedisLock`]: leases with an owner token and compare-and-delete release.
//!
//! Every key and channel starts with [`RedisConfig::key_prefix`], so deployments can share a
//! Redis. Every call is bounded by the connect, acquire and command timeouts and reports an
//! unreachable server as [`Error::Unavailable`](tenant_manager_core::Error::Unavailable).
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tenant_manager_core::{JobQueue, QuotaEnforcer, RateKey, RateLimit, TenantCache, TenantId};
//! use tenant_manager_redis::{
//!     JobQueueConfig, RedisConfig, RedisJobQueue, RedisPool, RedisQuotaEnforcer,
//!     RedisTenantCache, TenantCacheConfig,
//! };
//!
//! # async fn run() -> tenant_manager_core::Result<()> {
//! let pool = RedisPool::connect(
//!     RedisConfig::new("redis://127.0.0.1:6379")
//!         .with_password("from REDIS_PASSWORD")
//!         .with_key_prefix("saas:"),
//! )
//! .await?;
//! pool.ping().await?;
//!
//! let quotas: Arc<dyn QuotaEnforcer> = Arc::new(RedisQuotaEnforcer::new(&pool));
//! let limit = RateLimit::new(100, Duration::from_millis(900_000))?;
//! let decision = quotas.check_rate(&RateKey::tenant(TenantId::new()), &limit, 1).await?;
//! println!("allowed: {}, remaining: {}", decision.allowed, decision.remaining);
//!
//! let cache: Arc<dyn TenantCache> =
//!     Arc::new(RedisTenantCache::new(&pool, TenantCacheConfig::default()).await?);
//! let jobs: Arc<dyn JobQueue> =
//!     Arc::new(RedisJobQueue::new(&pool, JobQueueConfig::default())?);
//! # let _ = (cache, jobs);
//! # Ok(())
//! # }
//! ```
//!
//! The cache's alias lookups and the queue's per-job hashes use keys computed inside Lua
//! scripts, so these components need a standalone Redis, not Redis Cluster.

mod cache;
mod config;
mod error;
mod events;
mod keys;
mod leases;
mod lock;
mod pool;
mod queue;
mod quota;
mod schedules;
mod scripts;
mod stream;

pub use cache::{
    Invalidation, InvalidationReceiver, RedisTenantCache, TenantCacheConfig, TenantCacheStats,
};
pub use config::{RedisConfig, UnavailablePolicy};
pub use error::map_redis;
pub use events::{DeadEvent, EventDelivery, EventStreamConfig, RedisEventBus, RedisEventGroup};
pub use leases::RedisConnectionLeases;
pub use lock::{LockGuard, RedisLock};
pub use pool::RedisPool;
pub use queue::{JobQueueConfig, RedisJobQueue};
pub use quota::{RateLeaseConfig, RedisQuotaEnforcer};
pub use schedules::RedisSchedules;

/// The driver, re-exported so hosts use the same version.
pub use redis;
