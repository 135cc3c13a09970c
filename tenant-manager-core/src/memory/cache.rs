//! `InMemoryTenantCache`: tenant records by id, with slug and domain indexes, in moka caches.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use moka::future::Cache;

use crate::domain::{Tenant, TenantId, TenantSlug};
use crate::error::{Error, Result};
use crate::traits::{CacheEpoch, CacheKey, CacheLookup, CacheStats, TenantCache};

/// Settings of an [`InMemoryTenantCache`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct InMemoryCacheConfig {
    /// How long an entry is served after it was put (default 60 s).
    pub ttl: Duration,
    /// Most tenants held at once; least useful entries are evicted past it (default 100,000).
    pub max_capacity: u64,
}

impl Default for InMemoryCacheConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(60),
            max_capacity: 100_000,
        }
    }
}

impl InMemoryCacheConfig {
    /// Sets the time to live.
    #[must_use]
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets the most tenants held at once.
    #[must_use]
    pub fn with_max_capacity(mut self, max_capacity: u64) -> Self {
        self.max_capacity = max_capacity;
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `ttl` when not 1 ms to 1 day, on `max_capacity` when 0.
    pub fn validate(&self) -> Result<()> {
        if self.ttl < Duration::from_millis(1) || self.ttl > Duration::from_secs(86_400) {
            return Err(Error::invalid("ttl", "must be between 1 ms and 1 day"));
        }
        if self.max_capacity == 0 {
            return Err(Error::invalid("max_capacity", "must be at least 1"));
        }
        Ok(())
    }
}

/// A process-local tenant cache with a TTL and a bounded size.
///
/// Records are held by id; slugs and domains are indexes pointing at ids. Every lookup through
/// an index checks that the record it reaches still carries that slug or domain, so a record
/// replaced by [`put`](TenantCache::put) with a new slug is never served under the old one, and
/// [`invalidate`](TenantCache::invalidate) of the id makes every view miss at once.
///
/// The epoch is a counter every invalidation advances before it drops the record;
/// [`put_if_current`](TenantCache::put_if_current) checks it before and after writing and takes
/// its write back when an invalidation ran in between, so no lock is taken.
///
/// Clones share one cache. There is no other instance to reach, so the contract's cross-instance
/// invalidation holds trivially for clones and does not apply across processes: a scaled-out
/// deployment uses a shared backend (the Redis cache) instead. [`TenantCache::stats`] counts
/// entries approximately (moka applies evictions in batches).
#[derive(Clone)]
pub struct InMemoryTenantCache {
    inner: Arc<Inner>,
}

struct Inner {
    by_id: Cache<TenantId, Tenant>,
    by_slug: Cache<TenantSlug, TenantId>,
    by_domain: Cache<String, TenantId>,
    epoch: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    config: InMemoryCacheConfig,
}

impl InMemoryTenantCache {
    /// A cache with `config`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the config does not validate.
    pub fn new(config: InMemoryCacheConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self::unchecked(config))
    }

    fn unchecked(config: InMemoryCacheConfig) -> Self {
        fn build<K, V>(config: &InMemoryCacheConfig) -> Cache<K, V>
        where
            K: std::hash::Hash + Eq + Send + Sync + 'static,
            V: Clone + Send + Sync + 'static,
        {
            Cache::builder()
                .max_capacity(config.max_capacity)
                .time_to_live(config.ttl)
                .build()
        }
        Self {
            inner: Arc::new(Inner {
                by_id: build(&config),
                by_slug: build(&config),
                by_domain: build(&config),
                epoch: AtomicU64::new(0),
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
                config,
            }),
        }
    }

    /// The record an index entry points at, if it still carries the indexed value.
    async fn through_index(
        &self,
        id: Option<TenantId>,
        still_matches: impl Fn(&Tenant) -> bool,
    ) -> Option<Tenant> {
        let tenant = self.inner.by_id.get(&id?).await?;
        still_matches(&tenant).then_some(tenant)
    }

    fn epoch(&self) -> u64 {
        self.inner.epoch.load(Ordering::SeqCst)
    }

    /// Drops the record of `id` and the indexes still pointing at it, leaving the epoch alone.
    async fn drop_record(&self, id: TenantId) {
        // Dropping the record is what makes every view miss; the indexes are tidied after.
        let Some(old) = self.inner.by_id.remove(&id).await else {
            return;
        };
        if self.inner.by_slug.get(&old.slug).await == Some(id) {
            self.inner.by_slug.invalidate(&old.slug).await;
        }
        if let Some(domain) = old.domain.map(|d| d.to_ascii_lowercase())
            && self.inner.by_domain.get(&domain).await == Some(id)
        {
            self.inner.by_domain.invalidate(&domain).await;
        }
    }
}

impl Default for InMemoryTenantCache {
    /// A cache with the default (valid) config.
    fn default() -> Self {
        Self::unchecked(InMemoryCacheConfig::default())
    }
}

impl fmt::Debug for InMemoryTenantCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryTenantCache")
            .field("stats", &self.stats())
            .field("config", &self.inner.config)
            .finish()
    }
}

#[async_trait]
impl TenantCache for InMemoryTenantCache {
    async fn lookup(&self, key: &CacheKey) -> Result<CacheLookup> {
        let epoch = CacheEpoch::new(self.epoch());
        let found = match key {
            CacheKey::Id(id) => self.inner.by_id.get(id).await,
            CacheKey::Slug(slug) => {
                let id = self.inner.by_slug.get(slug).await;
                let found = self.through_index(id, |t| &t.slug == slug).await;
                if found.is_none() && id.is_some() {
                    self.inner.by_slug.invalidate(slug).await;
                }
                found
            }
            CacheKey::Domain(domain) => {
                let domain = domain.to_ascii_lowercase();
                let id = self.inner.by_domain.get(&domain).await;
                let found = self
                    .through_index(id, |t| {
                        t.domain
                            .as_deref()
                            .is_some_and(|d| d.eq_ignore_ascii_case(&domain))
                    })
                    .await;
                if found.is_none() && id.is_some() {
                    self.inner.by_domain.invalidate(&domain).await;
                }
                found
            }
        };
        let counter = if found.is_some() {
            &self.inner.hits
        } else {
            &self.inner.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(found.map_or(CacheLookup::Miss(epoch), CacheLookup::Hit))
    }

    async fn put(&self, tenant: &Tenant) -> Result<()> {
        // The record first, then the indexes that point at it.
        self.inner.by_id.insert(tenant.id, tenant.clone()).await;
        self.inner
            .by_slug
            .insert(tenant.slug.clone(), tenant.id)
            .await;
        if let Some(domain) = &tenant.domain {
            self.inner
                .by_domain
                .insert(domain.to_ascii_lowercase(), tenant.id)
                .await;
        }
        Ok(())
    }

    async fn put_if_current(&self, tenant: &Tenant, epoch: CacheEpoch) -> Result<bool> {
        if self.epoch() != epoch.value() {
            return Ok(false);
        }
        self.put(tenant).await?;
        // An invalidation that began after the check above advanced the epoch before dropping
        // anything: it may have run before the write landed, so take the write back.
        if self.epoch() != epoch.value() {
            self.drop_record(tenant.id).await;
            return Ok(false);
        }
        Ok(true)
    }

    async fn invalidate(&self, id: TenantId) -> Result<()> {
        // The epoch first: a fill that checks it after this point is refused or taken back.
        self.inner.epoch.fetch_add(1, Ordering::SeqCst);
        self.drop_record(id).await;
        Ok(())
    }

    fn stats(&self) -> CacheStats {
        CacheStats::new(
            self.inner.hits.load(Ordering::Relaxed),
            self.inner.misses.load(Ordering::Relaxed),
            self.inner.by_id.entry_count(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_validated() {
        let bad = InMemoryCacheConfig::default().with_ttl(Duration::ZERO);
        assert_eq!(
            InMemoryTenantCache::new(bad)
                .err()
                .and_then(|e| e.field().map(str::to_owned)),
            Some("ttl".to_owned())
        );
        let bad = InMemoryCacheConfig::default().with_max_capacity(0);
        assert!(InMemoryTenantCache::new(bad).is_err());
        assert!(InMemoryTenantCache::new(InMemoryCacheConfig::default()).is_ok());
    }

    fn tenant(slug: &str, domain: &str) -> Tenant {
        let slug = TenantSlug::new(slug).unwrap_or_else(|e| panic!("{e}"));
        crate::domain::NewTenant::new(slug, "Acme", crate::domain::Isolation::Shared)
            .unwrap_or_else(|e| panic!("{e}"))
            .with_domain(Some(domain.to_owned()))
            .into_tenant(time::OffsetDateTime::now_utc())
    }

    #[tokio::test]
    async fn domains_match_case_insensitively_and_clones_share_entries() {
        let cache = InMemoryTenantCache::default();
        let t = tenant("acme", "App.Acme.test");
        cache.put(&t).await.unwrap_or_else(|e| panic!("{e}"));
        let clone = cache.clone();
        let found = clone
            .get(&CacheKey::Domain("APP.ACME.TEST".to_owned()))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(found.map(|f| f.id), Some(t.id));
        clone
            .invalidate(t.id)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let gone = cache.get(&CacheKey::Id(t.id)).await;
        assert!(gone.is_ok_and(|g| g.is_none()));
    }

    #[tokio::test]
    async fn memory_is_bounded_by_max_capacity() {
        let config = InMemoryCacheConfig::default().with_max_capacity(10);
        let cache = InMemoryTenantCache::new(config).unwrap_or_else(|e| panic!("{e}"));
        for i in 0..200 {
            let t = tenant(&format!("tenant{i}"), &format!("t{i}.acme.test"));
            cache.put(&t).await.unwrap_or_else(|e| panic!("{e}"));
        }
        cache.inner.by_id.run_pending_tasks().await;
        cache.inner.by_slug.run_pending_tasks().await;
        cache.inner.by_domain.run_pending_tasks().await;
        assert!(cache.stats().entries <= 10, "{:?}", cache.stats());
        assert!(cache.inner.by_slug.entry_count() <= 10);
        assert!(cache.inner.by_domain.entry_count() <= 10);
    }
}
