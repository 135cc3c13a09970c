//! [`RedisTenantCache`]: tenant records in Redis with a TTL, fronted by an in-process cache,
//! invalidated on every instance through pub/sub.

mod config;
mod feed;
mod local;
mod subscriber;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use tenant_manager_core::{
    CacheEpoch, CacheKey, CacheLookup, CacheStats, Error, Result, Tenant, TenantCache, TenantId,
};

use crate::pool::RedisPool;
use crate::scripts;
pub use config::TenantCacheConfig;
use feed::Feed;
pub use feed::{Invalidation, InvalidationReceiver};
use local::Local;

/// Counters of one cache instance, by layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TenantCacheStats {
    /// Lookups answered by the local layer.
    pub local_hits: u64,
    /// Lookups answered by Redis.
    pub redis_hits: u64,
    /// Lookups that found nothing.
    pub misses: u64,
    /// Tenants held locally (approximate: the local cache counts lazily).
    pub local_entries: u64,
    /// Whether the subscriber is receiving invalidations (otherwise the local layer is bypassed).
    pub subscribed: bool,
}

/// Tenant lookups cached in Redis (shared by all instances, with a TTL) and in process (moka).
///
/// - Records live under `<prefix>tenant:{tenant-cache}:id:<id>`; slug and domain keys hold the id, and a
///   lookup through them is one round trip (a Lua script). A record whose slug or domain no
///   longer matches the key is a miss. All these keys share the hash tag `{tenant-cache}`, so
///   on a Redis Cluster the scripts run on one master.
/// - [`TenantCache::invalidate`] drops the local copy and the Redis record, `INCR`s the epoch
///   `<prefix>tenant:{tenant-cache}:epoch` and `PUBLISH`es the id on `<prefix>tenant-invalidate` (one
///   script); every instance's subscriber drops its copy on receipt, well within a second.
/// - A lookup that misses reads the epoch in the same script as the record;
///   [`TenantCache::put_if_current`] writes only if the epoch is still that value (a Lua
///   compare-and-set), so a record read from the registry before another instance's
///   invalidation is refused. The local layer keeps a write only if no invalidation message
///   arrived since just before the script ran, so it cannot keep one either.
/// - While the subscriber is disconnected (it reconnects with backoff) the local layer is
///   bypassed, and it is emptied on resubscription, so staleness stays bounded by the
///   invalidation path, never by a TTL.
/// - Across a Redis restart (or failover, or network cut): the subscriber's disconnection
///   marks the pool's connections stale, so the first invalidation after the restart runs on
///   a fresh connection instead of failing on a dead idle one (and a script that still meets
///   a dropped connection is run once more on a fresh one; an invalidation also tries a real
///   connection when the pool was refusing calls after a failed connect). The epoch counter, lost with the
///   restart, starts again from the server's clock in microseconds, never from 0, so a fill
///   that read the epoch before the restart is refused.
/// - Hit and miss counters feed `cache_hit_rate`; metrics `tenant_cache_lookups_total{result}`.
/// - A host that keeps per-tenant state beyond the cache (open connection pools) observes
///   every invalidation the subscriber applies, this instance's own included, through
///   [`RedisTenantCache::subscribe_invalidations`].
///
/// Cheap to clone; the subscriber task stops when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct RedisTenantCache {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: RedisPool,
    local: Arc<Local>,
    config: TenantCacheConfig,
    channel: String,
    feed: Feed,
    _subscriber: subscriber::AbortOnDrop,
}

impl RedisTenantCache {
    /// A cache on `pool`; starts its subscriber task.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad `config`.
    pub async fn new(pool: &RedisPool, config: TenantCacheConfig) -> Result<Self> {
        config.validate()?;
        let local = Arc::new(Local::new(
            config.local_layer,
            config.local_capacity,
            config.local_ttl,
        ));
        let channel = pool.keys().invalidation_channel();
        let feed = Feed::new(config.invalidation_capacity);
        let subscriber = subscriber::spawn(
            pool.clone(),
            channel.clone(),
            &local,
            feed.clone(),
            config.ping_interval,
        );
        Ok(Self {
            inner: Arc::new(Inner {
                pool: pool.clone(),
                local,
                config,
                channel,
                feed,
                _subscriber: subscriber,
            }),
        })
    }

    /// Waits until the subscriber receives invalidations (up to `timeout`); returns whether it
    /// does. Until then lookups bypass the local layer, so waiting is never needed for
    /// correctness, only to measure the local layer.
    pub async fn wait_subscribed(&self, timeout: Duration) -> bool {
        self.inner.local.wait_subscribed(timeout).await
    }

    /// A receiver of the invalidations this cache's subscriber applies from now on: those
    /// published by every instance sharing the Redis key prefix, this one's included.
    ///
    /// Each [`Invalidation::Tenant`] arrives after the local copy is dropped, so a lookup made
    /// on receipt reads past this instance's local layer. [`Invalidation::All`] arrives after
    /// each (re)subscription of the subscriber (messages may have been lost while it was
    /// disconnected), for a bulk or unreadable message, and in place of what a receiver missed
    /// by falling [`invalidation_capacity`](TenantCacheConfig::invalidation_capacity) behind.
    /// Invalidations are observed only while the subscriber is connected; the `All` that
    /// follows a reconnection covers the gap. [`InvalidationReceiver::recv`] returns `None`
    /// once every clone of the cache is dropped.
    pub fn subscribe_invalidations(&self) -> InvalidationReceiver {
        self.inner.feed.subscribe()
    }

    /// Counters by layer.
    pub fn detailed_stats(&self) -> TenantCacheStats {
        let counters = &self.inner.local.counters;
        TenantCacheStats {
            local_hits: counters.local_hits.load(Ordering::Relaxed),
            redis_hits: counters.redis_hits.load(Ordering::Relaxed),
            misses: counters.misses.load(Ordering::Relaxed),
            local_entries: self.inner.local.entry_count(),
            subscribed: self.inner.local.is_subscribed(),
        }
    }

    /// Drops every tenant from every instance's local layer (Redis records stay until their
    /// TTL). For bulk changes such as a plan catalog update.
    ///
    /// # Errors
    /// [`Error::Unavailable`]; the local layer of this instance is cleared anyway.
    pub async fn invalidate_all_local(&self) -> Result<()> {
        self.inner.local.clear();
        self.inner
            .pool
            .query::<i64>(
                redis::cmd("PUBLISH")
                    .arg(&self.inner.channel)
                    .arg(subscriber::INVALIDATE_ALL),
            )
            .await
            .map(drop)
    }

    fn count(&self, result: &'static str) {
        let counters = &self.inner.local.counters;
        let counter = match result {
            "local_hit" => &counters.local_hits,
            "redis_hit" => &counters.redis_hits,
            _ => &counters.misses,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("tenant_cache_lookups_total", "result" => result).increment(1);
    }

    /// The record for `key` from Redis, and the epoch read with it.
    async fn fetch(&self, key: &CacheKey) -> Result<(Option<Tenant>, CacheEpoch)> {
        let keys = self.inner.pool.keys();
        let (key, alias_prefix) = match key {
            CacheKey::Id(id) => (keys.tenant(*id), String::new()),
            CacheKey::Slug(slug) => (keys.tenant_slug(slug), keys.tenant_prefix()),
            CacheKey::Domain(domain) => (keys.tenant_domain(domain), keys.tenant_prefix()),
        };
        let reply: Vec<String> = self
            .inner
            .pool
            .invoke_idempotent(
                scripts::CACHE_LOOKUP
                    .key(key)
                    .key(keys.tenant_epoch())
                    .arg(alias_prefix),
            )
            .await?;
        let mut reply = reply.into_iter();
        let epoch = reply
            .next()
            .ok_or_else(|| Error::internal("tenant cache lookup returned no epoch"))?
            .parse::<u64>()
            .map_err(|e| Error::internal_with("tenant cache epoch is not a counter", e))?;
        let tenant = reply
            .next()
            .map(|json| {
                serde_json::from_str::<Tenant>(&json)
                    .map_err(|e| Error::internal_with("cached tenant record is not readable", e))
            })
            .transpose()?;
        Ok((tenant, CacheEpoch::new(epoch)))
    }

    /// Writes `tenant` to Redis (only if the epoch is still `epoch`, when given) and then to
    /// the local layer; returns whether it was written.
    async fn write(&self, tenant: &Tenant, epoch: Option<CacheEpoch>) -> Result<bool> {
        let keys = self.inner.pool.keys();
        let json = serde_json::to_string(tenant)
            .map_err(|e| Error::internal_with("tenant record does not serialize", e))?;
        // Read before the script: an invalidation that reaches Redis after the script reaches
        // this instance's subscriber after this read, so the local insert is refused or undone.
        let generation = self.inner.local.generation();
        let mut script = scripts::CACHE_PUT.key(keys.tenant_epoch());
        script.key(keys.tenant(tenant.id));
        script.key(keys.tenant_slug(&tenant.slug));
        if let Some(domain) = &tenant.domain {
            script.key(keys.tenant_domain(&domain.to_ascii_lowercase()));
        }
        script
            .arg(json)
            .arg(millis(self.inner.config.ttl))
            .arg(tenant.id.to_string())
            .arg(epoch.map(|e| e.value().to_string()).unwrap_or_default());
        let written: i64 = self.inner.pool.invoke_idempotent(&script).await?;
        if written != 1 {
            return Ok(false);
        }
        self.inner
            .local
            .insert(
                &CacheKey::Id(tenant.id),
                Arc::new(tenant.clone()),
                generation,
            )
            .await;
        Ok(true)
    }
}

/// The epoch of a lookup whose key cannot have been cached: the Redis counter never reaches
/// it, so a fill with it is refused.
const UNREACHABLE_EPOCH: CacheEpoch = CacheEpoch::new(u64::MAX);

/// Lookup keys are case-insensitive for domains; Redis and local keys use lowercase.
fn normalize(key: &CacheKey) -> Option<CacheKey> {
    match key {
        CacheKey::Domain(domain) => {
            // Longer than any host name: it cannot have been cached.
            (domain.len() <= 253).then(|| CacheKey::Domain(domain.to_ascii_lowercase()))
        }
        other => Some(other.clone()),
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[async_trait]
impl TenantCache for RedisTenantCache {
    async fn lookup(&self, key: &CacheKey) -> Result<CacheLookup> {
        let Some(key) = normalize(key) else {
            self.count("miss");
            return Ok(CacheLookup::Miss(UNREACHABLE_EPOCH));
        };
        let local = &self.inner.local;
        if let Some(tenant) = local.get(&key).await {
            self.count("local_hit");
            return Ok(CacheLookup::Hit(Tenant::clone(&tenant)));
        }
        let generation = local.generation();
        match self.fetch(&key).await? {
            (Some(tenant), _) if local::matches(&key, &tenant) => {
                self.count("redis_hit");
                local
                    .insert(&key, Arc::new(tenant.clone()), generation)
                    .await;
                Ok(CacheLookup::Hit(tenant))
            }
            (_, epoch) => {
                self.count("miss");
                Ok(CacheLookup::Miss(epoch))
            }
        }
    }

    async fn put(&self, tenant: &Tenant) -> Result<()> {
        self.write(tenant, None).await.map(drop)
    }

    async fn put_if_current(&self, tenant: &Tenant, epoch: CacheEpoch) -> Result<bool> {
        self.write(tenant, Some(epoch)).await
    }

    async fn invalidate(&self, id: TenantId) -> Result<()> {
        let local = &self.inner.local;
        local.invalidate(id).await;
        let keys = self.inner.pool.keys();
        let published = self
            .inner
            .pool
            .invoke_must_deliver::<i64>(
                scripts::CACHE_INVALIDATE
                    .key(keys.tenant(id))
                    .key(keys.tenant_epoch())
                    .arg(&self.inner.channel)
                    .arg(id.to_string()),
            )
            .await;
        // A lookup that read Redis before the delete may have cached the old record since.
        local.invalidate(id).await;
        published.map(drop)
    }

    fn stats(&self) -> CacheStats {
        let stats = self.detailed_stats();
        CacheStats::new(
            stats.local_hits + stats.redis_hits,
            stats.misses,
            stats.local_entries,
        )
    }
}
