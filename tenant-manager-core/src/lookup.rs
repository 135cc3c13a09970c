//! `TenantLookup`: the hot-path tenant lookup, a [`TenantRegistry`] behind a [`TenantCache`].
//!
//! The tower layer and `TenantManager` resolve tenants through it: the cache answers first,
//! the registry on a miss (and the answer is cached), and a cache that is
//! [`Unavailable`](Error::Unavailable) is bypassed rather than failing the request.

use std::sync::Arc;

use crate::domain::{Tenant, TenantId};
use crate::error::{Error, Result};
use crate::traits::{CacheKey, CacheLookup, CacheStats, TenantCache, TenantRegistry};

/// Name of the gauge [`TenantLookup::record_metrics`] sets: the cache's hit rate (0 to 1).
pub const CACHE_HIT_RATE: &str = "cache_hit_rate";

/// Looks tenants up in a cache first and in the registry on a miss.
///
/// One cache round trip on a hit, plus one registry query and one cache write on a miss;
/// no lock is taken. Misses in the registry are not cached, so an unknown slug costs a registry
/// query each time: put a rate limit in front of unauthenticated resolution.
///
/// A lookup racing with an invalidation never leaves the record it read before the change in
/// the cache, whichever instance or handle invalidates: the miss returns the cache's
/// [`CacheEpoch`](crate::traits::CacheEpoch), and the fill is a
/// [`put_if_current`](TenantCache::put_if_current) the cache refuses (or takes back) when an
/// invalidation ran since. The lookup still returns what it read; only the cache forgets it.
///
/// Clones share the same registry and cache.
#[derive(Debug, Clone)]
pub struct TenantLookup {
    registry: Arc<dyn TenantRegistry>,
    cache: Arc<dyn TenantCache>,
}

impl TenantLookup {
    /// A lookup of `registry` behind `cache`.
    pub fn new(registry: Arc<dyn TenantRegistry>, cache: Arc<dyn TenantCache>) -> Self {
        Self { registry, cache }
    }

    /// The registry behind the cache.
    pub fn registry(&self) -> &Arc<dyn TenantRegistry> {
        &self.registry
    }

    /// The cache in front of the registry.
    pub fn cache(&self) -> &Arc<dyn TenantCache> {
        &self.cache
    }

    /// The tenant under `key`, from the cache or else the registry; `None` when it does not exist.
    ///
    /// # Errors
    /// The registry's errors (such as [`Error::Unavailable`]); the cache's errors other than
    /// `Unavailable`, which is logged at debug level and bypassed.
    pub async fn get(&self, key: &CacheKey) -> Result<Option<Tenant>> {
        let epoch = match bypass_unavailable(self.cache.lookup(key).await, "lookup")? {
            Some(CacheLookup::Hit(tenant)) => return Ok(Some(tenant)),
            Some(CacheLookup::Miss(epoch)) => Some(epoch),
            // Without an epoch a fill could not be made safe: skip it.
            None => None,
        };
        let found = self.read_registry(key).await?;
        if let (Some(tenant), Some(epoch)) = (&found, epoch) {
            let filled = bypass_unavailable(self.cache.put_if_current(tenant, epoch).await, "put")?;
            if filled == Some(false) {
                tracing::debug!(tenant = %tenant.id, "tenant invalidated during the lookup; not cached");
            }
        }
        Ok(found)
    }

    /// Drops a tenant from the cache (everywhere the cache reaches). Call it after every change
    /// to a tenant in the registry.
    ///
    /// # Errors
    /// The cache's errors, including [`Error::Unavailable`]: the caller decides whether a
    /// change that could not be broadcast is acceptable.
    pub async fn invalidate(&self, id: TenantId) -> Result<()> {
        self.cache.invalidate(id).await
    }

    /// The cache's hit and miss counters.
    pub fn stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// Sets the gauge [`CACHE_HIT_RATE`] from [`stats`](TenantLookup::stats). Call it
    /// periodically (for example every few seconds, or on each metrics scrape).
    pub fn record_metrics(&self) {
        metrics::gauge!(CACHE_HIT_RATE).set(self.stats().hit_rate());
    }

    async fn read_registry(&self, key: &CacheKey) -> Result<Option<Tenant>> {
        match key {
            CacheKey::Id(id) => match self.registry.get_tenant(*id).await {
                Ok(tenant) => Ok(Some(tenant)),
                Err(Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            },
            CacheKey::Slug(slug) => self.registry.find_tenant_by_slug(slug).await,
            CacheKey::Domain(domain) => {
                self.registry
                    .find_tenant_by_domain(&domain.to_ascii_lowercase())
                    .await
            }
        }
    }
}

/// `Ok(None)` for an unavailable cache (logged), the result otherwise.
fn bypass_unavailable<T>(result: Result<T>, operation: &'static str) -> Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(error @ Error::Unavailable { .. }) => {
            tracing::debug!(%error, operation, "tenant cache unavailable; using the registry");
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use tokio::sync::Notify;

    use super::*;
    use crate::domain::{Isolation, NewTenant, TenantSlug, TenantUpdate};
    use crate::memory::{InMemoryRegistry, InMemoryTenantCache};
    use crate::traits::CacheEpoch;

    async fn tenant(registry: &InMemoryRegistry, slug: &str) -> Tenant {
        let slug = TenantSlug::new(slug).unwrap_or_else(|e| panic!("{e}"));
        let new = NewTenant::new(slug, "Acme", Isolation::Shared)
            .unwrap_or_else(|e| panic!("{e}"))
            .with_domain(Some("app.acme.test".to_owned()));
        registry
            .create_tenant(new)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn lookup(registry: &Arc<InMemoryRegistry>, cache: Arc<dyn TenantCache>) -> TenantLookup {
        TenantLookup::new(Arc::clone(registry) as Arc<dyn TenantRegistry>, cache)
    }

    async fn get(lookup: &TenantLookup, key: &CacheKey) -> Option<Tenant> {
        lookup.get(key).await.unwrap_or_else(|e| panic!("{e}"))
    }

    async fn rename(registry: &InMemoryRegistry, id: TenantId, name: &str) {
        registry
            .update_tenant(id, TenantUpdate::default().with_name(name))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    #[tokio::test]
    async fn misses_fill_the_cache_and_hits_skip_the_registry_until_invalidated() {
        let registry = Arc::new(InMemoryRegistry::new());
        let cache = Arc::new(InMemoryTenantCache::default());
        let lookup = lookup(&registry, cache.clone());
        let t = tenant(&registry, "acme").await;

        let keys = [
            CacheKey::Id(t.id),
            CacheKey::Slug(t.slug.clone()),
            CacheKey::Domain("APP.acme.test".to_owned()),
        ];
        for key in &keys {
            assert_eq!(get(&lookup, key).await.map(|t| t.id), Some(t.id), "{key}");
        }
        let stats = lookup.stats();
        assert_eq!(
            (stats.hits, stats.misses),
            (2, 1),
            "one miss filled all views"
        );

        rename(&registry, t.id, "Renamed").await;
        let cached = get(&lookup, &CacheKey::Id(t.id)).await;
        assert_eq!(
            cached.map(|t| t.name),
            Some("Acme".to_owned()),
            "served from cache"
        );
        lookup
            .invalidate(t.id)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for key in &keys {
            let fresh = get(&lookup, key).await;
            assert_eq!(fresh.map(|t| t.name), Some("Renamed".to_owned()), "{key}");
        }
    }

    #[tokio::test]
    async fn unknown_tenants_are_none_and_not_errors() {
        let registry = Arc::new(InMemoryRegistry::new());
        let lookup = lookup(&registry, Arc::new(InMemoryTenantCache::default()));
        assert!(get(&lookup, &CacheKey::Id(TenantId::new())).await.is_none());
        let slug = TenantSlug::new("nobody").unwrap_or_else(|e| panic!("{e}"));
        assert!(get(&lookup, &CacheKey::Slug(slug)).await.is_none());
        assert!(
            get(&lookup, &CacheKey::Domain("no.such.test".into()))
                .await
                .is_none()
        );
    }

    /// A cache whose backend is down: every call fails with `Unavailable`.
    #[derive(Debug)]
    struct DownCache;

    fn down() -> Error {
        Error::unavailable("test cache", std::io::Error::other("connection refused"))
    }

    #[async_trait]
    impl TenantCache for DownCache {
        async fn lookup(&self, _: &CacheKey) -> Result<CacheLookup> {
            Err(down())
        }
        async fn put(&self, _: &Tenant) -> Result<()> {
            Err(down())
        }
        async fn put_if_current(&self, _: &Tenant, _: CacheEpoch) -> Result<bool> {
            Err(down())
        }
        async fn invalidate(&self, _: TenantId) -> Result<()> {
            Err(down())
        }
        fn stats(&self) -> CacheStats {
            CacheStats::default()
        }
    }

    #[tokio::test]
    async fn an_unavailable_cache_falls_back_to_the_registry() {
        let registry = Arc::new(InMemoryRegistry::new());
        let lookup = lookup(&registry, Arc::new(DownCache));
        let t = tenant(&registry, "acme").await;
        assert_eq!(get(&lookup, &CacheKey::Id(t.id)).await, Some(t.clone()));
        assert_eq!(
            get(&lookup, &CacheKey::Slug(t.slug.clone())).await,
            Some(t.clone())
        );
        let err = lookup.invalidate(t.id).await.err();
        assert_eq!(err.map(|e| e.code()), Some("backend_unavailable"));
    }

    /// A real cache whose fill waits for a signal, to interleave a lookup with an update.
    #[derive(Debug, Default)]
    struct GatedPut {
        cache: InMemoryTenantCache,
        entered: Notify,
        release: Notify,
    }

    #[async_trait]
    impl TenantCache for GatedPut {
        async fn lookup(&self, key: &CacheKey) -> Result<CacheLookup> {
            self.cache.lookup(key).await
        }
        async fn put(&self, tenant: &Tenant) -> Result<()> {
            self.cache.put(tenant).await
        }
        async fn put_if_current(&self, tenant: &Tenant, epoch: CacheEpoch) -> Result<bool> {
            self.entered.notify_one();
            self.release.notified().await;
            self.cache.put_if_current(tenant, epoch).await
        }
        async fn invalidate(&self, id: TenantId) -> Result<()> {
            self.cache.invalidate(id).await
        }
        fn stats(&self) -> CacheStats {
            self.cache.stats()
        }
    }

    /// Who invalidates while a lookup is between its registry read and its fill.
    #[derive(Debug, Clone, Copy)]
    enum Invalidator {
        /// The lookup itself (a clone of it).
        SameLookup,
        /// Another lookup over the same cache, as `TenantManager` or another request path is.
        OtherLookup,
        /// The cache directly, as `TenantManager` and the provisioning worker do.
        Cache,
    }

    #[tokio::test]
    async fn a_lookup_racing_an_invalidation_does_not_cache_the_stale_record() {
        for invalidator in [
            Invalidator::SameLookup,
            Invalidator::OtherLookup,
            Invalidator::Cache,
        ] {
            lookup_racing_an_invalidation(invalidator).await;
        }
    }

    async fn lookup_racing_an_invalidation(invalidator: Invalidator) {
        let registry = Arc::new(InMemoryRegistry::new());
        let gated = Arc::new(GatedPut::default());
        let lookup = lookup(&registry, gated.clone());
        let t = tenant(&registry, "acme").await;

        let reader = {
            let lookup = lookup.clone();
            tokio::spawn(async move { lookup.get(&CacheKey::Id(t.id)).await })
        };
        gated.entered.notified().await;
        rename(&registry, t.id, "Renamed").await;
        let invalidated = match invalidator {
            Invalidator::SameLookup => lookup.invalidate(t.id).await,
            Invalidator::OtherLookup => {
                let other = TenantLookup::new(
                    Arc::clone(&registry) as Arc<dyn TenantRegistry>,
                    gated.clone(),
                );
                other.invalidate(t.id).await
            }
            Invalidator::Cache => gated.invalidate(t.id).await,
        };
        invalidated.unwrap_or_else(|e| panic!("{e}"));
        gated.release.notify_one();
        let stale = reader.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            stale.ok().flatten().map(|t| t.name),
            Some("Acme".to_owned())
        );

        let cached = gated
            .cache
            .get(&CacheKey::Id(t.id))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            cached.is_none(),
            "{invalidator:?}: the record read before the change was not left in the cache"
        );
        // The same cache without the gate: the next lookup caches the current record.
        let ungated = TenantLookup::new(
            Arc::clone(&registry) as Arc<dyn TenantRegistry>,
            Arc::new(gated.cache.clone()),
        );
        let fresh = get(&ungated, &CacheKey::Id(t.id)).await;
        assert_eq!(fresh.map(|t| t.name), Some("Renamed".to_owned()));
        let cached = gated.cache.get(&CacheKey::Id(t.id)).await;
        assert_eq!(
            cached.ok().flatten().map(|t| t.name),
            Some("Renamed".to_owned())
        );
    }

    #[test]
    fn record_metrics_publishes_the_hit_rate() {
        use metrics_util::debugging::{DebugValue, DebuggingRecorder};

        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let registry = Arc::new(InMemoryRegistry::new());
        let lookup = lookup(&registry, Arc::new(InMemoryTenantCache::default()));
        metrics::with_local_recorder(&recorder, || lookup.record_metrics());
        let gauges: Vec<_> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, ..)| key.key().name() == CACHE_HIT_RATE)
            .map(|(.., value)| value)
            .collect();
        assert_eq!(gauges.len(), 1);
        assert!(matches!(gauges.first(), Some(DebugValue::Gauge(v)) if v.into_inner() == 1.0));
    }
}
