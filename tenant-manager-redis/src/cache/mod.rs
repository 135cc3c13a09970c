//! [`RedisTenantCache`]: tenant records in Redis with a TTL, fronted by an in-process cache,
//! invalidated on every instance through pub/sub.

mod local;
mod subscriber;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use tenant_manager_core::{CacheKey, CacheStats, Error, Result, Tenant, TenantCache, TenantId};

use crate::pool::RedisPool;
use crate::scripts;
use local::Local;

/// Settings of a [`RedisTenantCache`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TenantCacheConfig {
    /// Time to live of records in Redis.
    pub ttl: Duration,
    /// Time to live of local copies; bounds staleness if an invalidation is ever lost.
    pub local_ttl: Duration,
    /// Most tenants held locally.
    pub local_capacity: u64,
    /// Whether to keep local copies at all; without them every lookup is one Redis round trip.
    pub local_layer: bool,
    /// How often the subscriber pings its connection to notice a silent disconnection.
    pub ping_interval: Duration,
}

impl Default for TenantCacheConfig {
    /// 5 min in Redis, 60 s locally for up to 10,000 tenants, 1 s ping.
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(300),
            local_ttl: Duration::from_secs(60),
            local_capacity: 10_000,
            local_layer: true,
            ping_interval: Duration::from_secs(1),
        }
    }
}

impl TenantCacheConfig {
    /// Sets the Redis TTL.
    #[must_use]
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets the local TTL.
    #[must_use]
    pub fn with_local_ttl(mut self, ttl: Duration) -> Self {
        self.local_ttl = ttl;
        self
    }

    /// Sets the local capacity.
    #[must_use]
    pub fn with_local_capacity(mut self, capacity: u64) -> Self {
        self.local_capacity = capacity;
        self
    }

    /// Keeps (`true`, the default) or skips local copies.
    #[must_use]
    pub fn with_local_layer(mut self, enabled: bool) -> Self {
        self.local_layer = enabled;
        self
    }

    /// Sets the subscriber's ping interval.
    #[must_use]
    pub fn with_ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval;
        self
    }

    /// Checks every field.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the first bad field.
    pub fn validate(&self) -> Result<()> {
        let ms = Duration::from_millis(1);
        let day = Duration::from_secs(86_400);
        for (field, value) in [
            ("cache.ttl", self.ttl),
            ("cache.local_ttl", self.local_ttl),
            ("cache.ping_interval", self.ping_interval),
        ] {
            if value < ms || value > day {
                return Err(Error::invalid(field, "must be between 1 ms and 1 day"));
            }
        }
        if self.local_ttl > self.ttl {
            return Err(Error::invalid(
                "cache.local_ttl",
                "must not exceed cache.ttl",
            ));
        }
        if self.local_capacity == 0 {
            return Err(Error::invalid("cache.local_capacity", "must be at least 1"));
        }
        Ok(())
    }
}

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
/// - Records live under `<prefix>tenant:id:<id>`; slug and domain keys hold the id, and a
///   lookup through them is one round trip (a Lua script). A record whose slug or domain no
///   longer matches the key is a miss.
/// - [`TenantCache::invalidate`] drops the local copy and the Redis record and `PUBLISH`es
///   the id on `<prefix>tenant-invalidate` (one script); every instance's subscriber drops its
///   copy on receipt, well within a second.
/// - While the subscriber is disconnected (it reconnects with backoff) the local layer is
///   bypassed, and it is emptied on resubscription, so staleness stays bounded by the
///   invalidation path, never by a TTL.
/// - Hit and miss counters feed `cache_hit_rate`; metrics `tenant_cache_lookups_total{result}`.
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
        let subscriber =
            subscriber::spawn(pool.clone(), channel.clone(), &local, config.ping_interval);
        Ok(Self {
            inner: Arc::new(Inner {
                pool: pool.clone(),
                local,
                config,
                channel,
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

    /// The record for `key` from Redis.
    async fn fetch(&self, key: &CacheKey) -> Result<Option<Tenant>> {
        let keys = self.inner.pool.keys();
        let raw: Option<String> = match key {
            CacheKey::Id(id) => {
                self.inner
                    .pool
                    .query(redis::cmd("GET").arg(keys.tenant(*id)))
                    .await?
            }
            CacheKey::Slug(slug) => {
                self.inner
                    .pool
                    .invoke(
                        scripts::CACHE_GET_ALIAS
                            .key(keys.tenant_slug(slug))
                            .arg(keys.tenant_prefix()),
                    )
                    .await?
            }
            CacheKey::Domain(domain) => {
                self.inner
                    .pool
                    .invoke(
                        scripts::CACHE_GET_ALIAS
                            .key(keys.tenant_domain(domain))
                            .arg(keys.tenant_prefix()),
                    )
                    .await?
            }
        };
        raw.map(|json| {
            serde_json::from_str::<Tenant>(&json)
                .map_err(|e| Error::internal_with("cached tenant record is not readable", e))
        })
        .transpose()
    }
}

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
    async fn get(&self, key: &CacheKey) -> Result<Option<Tenant>> {
        let Some(key) = normalize(key) else {
            self.count("miss");
            return Ok(None);
        };
        let local = &self.inner.local;
        if let Some(tenant) = local.get(&key).await {
            self.count("local_hit");
            return Ok(Some(Tenant::clone(&tenant)));
        }
        let generation = local.generation();
        match self.fetch(&key).await? {
            Some(tenant) if local::matches(&key, &tenant) => {
                self.count("redis_hit");
                local
                    .insert(&key, Arc::new(tenant.clone()), generation)
                    .await;
                Ok(Some(tenant))
            }
            _ => {
                self.count("miss");
                Ok(None)
            }
        }
    }

    async fn put(&self, tenant: &Tenant) -> Result<()> {
        let keys = self.inner.pool.keys();
        let json = serde_json::to_string(tenant)
            .map_err(|e| Error::internal_with("tenant record does not serialize", e))?;
        let generation = self.inner.local.generation();
        let mut script = scripts::CACHE_PUT.key(keys.tenant(tenant.id));
        script.key(keys.tenant_slug(&tenant.slug));
        if let Some(domain) = &tenant.domain {
            script.key(keys.tenant_domain(&domain.to_ascii_lowercase()));
        }
        script
            .arg(json)
            .arg(millis(self.inner.config.ttl))
            .arg(tenant.id.to_string());
        let _: i64 = self.inner.pool.invoke(&script).await?;
        self.inner
            .local
            .insert(
                &CacheKey::Id(tenant.id),
                Arc::new(tenant.clone()),
                generation,
            )
            .await;
        Ok(())
    }

    async fn invalidate(&self, id: TenantId) -> Result<()> {
        let local = &self.inner.local;
        local.invalidate(id).await;
        let published = self
            .inner
            .pool
            .invoke::<i64>(
                scripts::CACHE_INVALIDATE
                    .key(self.inner.pool.keys().tenant(id))
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
