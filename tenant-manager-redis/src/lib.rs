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
//! ## Redis Cluster
//!
//! [`RedisConfig::cluster`] (or [`RedisConfig::with_cluster`] with comma-separated seed URLs)
//! makes every pooled connection a cluster connection: commands and scripts go to the master
//! of their keys' slot and follow `MOVED`/`ASK` redirections, within the same connect, command
//! and acquire timeouts, with the same fail-fast behaviour and replacement of broken
//! connections as on a single server. What works, and how:
//!
//! - **Every component.** All the keys one script or transaction touches, those it is passed
//!   and those it computes from a prefix it is passed, share one `{hash tag}`: a rate key and
//!   the tenant's usage hash `{tenant:<id>}` (or the rate key's own); a job queue's stream,
//!   delayed set, dead letters, per-tenant lanes, turns and job hashes `{<queue name>}` (so
//!   the fairness round robin across tenants is one script on one slot); an event stream and
//!   its groups' dead letters `{<stream name>}`; a schedule store's due set and tenant hashes
//!   `{<store name>}`; the tenant cache's records, aliases and invalidation epoch
//!   `{tenant-cache}`. A lock is one key. A unit test checks every script's keys for one slot.
//! - **Spread.** Tenants' rate limits and usage, locks, queues, event streams and schedule
//!   stores hash to different slots, so they spread over the masters. The shared tenant cache
//!   is one slot, so one master; the in-process layer in front of it serves repeated lookups.
//! - **Invalidations.** Published with plain `PUBLISH` (from the invalidation script), which a
//!   cluster delivers to the subscribers of every node. Each cache's subscriber connects to
//!   the first seed that answers, so list several seeds.
//! - **Blocking reads.** `XREAD`/`XREADGROUP BLOCK` of idle queue consumers and event
//!   subscriptions run on the separate blocking pool, whose cluster connections have no reply
//!   timeout of their own (each read is bounded by its block time plus the command timeout).
//!
//! Not supported: reads from replicas (everything runs on masters); a host's own multi-key
//! commands through [`RedisPool::query`] must tag their keys themselves. Tested on Redis 7.0
//! (the test suite starts a private three-master cluster).
//!
//! The tenant cache's keys carry the `{tenant-cache}` tag in standalone mode too (one key
//! layout for both): after an upgrade from a release without it, records cached under the old
//! names are no longer read and expire with their TTL.

mod cache;
#[cfg(test)]
mod cluster_slots;
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
