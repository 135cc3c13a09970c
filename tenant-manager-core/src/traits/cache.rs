//! `TenantCache`: cached tenant lookups, invalidated everywhere on change.

use std::fmt;

use async_trait::async_trait;
use serde::Serialize;

use crate::domain::{Tenant, TenantId, TenantSlug};
use crate::error::Result;

/// How a tenant is looked up.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CacheKey {
    /// By id.
    Id(TenantId),
    /// By slug.
    Slug(TenantSlug),
    /// By custom domain (lowercase).
    Domain(String),
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CacheKey::Id(id) => write!(f, "id:{id}"),
            CacheKey::Slug(slug) => write!(f, "slug:{slug}"),
            CacheKey::Domain(domain) => write!(f, "domain:{domain}"),
        }
    }
}

/// Hit and miss counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that found nothing.
    pub misses: u64,
    /// Entries currently held (locally).
    pub entries: u64,
}

impl CacheStats {
    /// Counters.
    pub fn new(hits: u64, misses: u64, entries: u64) -> Self {
        Self {
            hits,
            misses,
            entries,
        }
    }

    /// hits / (hits + misses), or 1.0 before any lookup.
    pub fn hit_rate(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            1.0
        } else {
            self.hits as f64 / total as f64
        }
    }
}

/// A cache's invalidation epoch, as read by a [`TenantCache::lookup`] that missed.
///
/// Opaque to callers: hand it back to [`TenantCache::put_if_current`] to fill the cache with
/// what was read from the registry after the miss. Adapters choose what the number means (a
/// counter every invalidation advances, for the bundled ones), build it with
/// [`new`](CacheEpoch::new) and read it back with [`value`](CacheEpoch::value); callers have no
/// use for either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheEpoch(u64);

impl CacheEpoch {
    /// The epoch `value` of an adapter.
    pub const fn new(value: u64) -> Self {
        Self(value)
    }

    /// The adapter's value.
    pub const fn value(self) -> u64 {
        self.0
    }
}

/// What [`TenantCache::lookup`] found.
// A short-lived return value, no larger than `Option<Tenant>`; boxing the hit would cost an
// allocation on the hot path.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheLookup {
    /// The cached tenant.
    Hit(Tenant),
    /// Nothing cached; the epoch to fill the cache with after reading the registry.
    Miss(CacheEpoch),
}

impl CacheLookup {
    /// The tenant of a hit.
    pub fn into_tenant(self) -> Option<Tenant> {
        match self {
            CacheLookup::Hit(tenant) => Some(tenant),
            CacheLookup::Miss(_) => None,
        }
    }
}

/// Caches tenant records by id, slug and domain.
///
/// A lookup that misses fills the cache in three steps, so that a record read before a change
/// is never cached after the change's invalidation, on any instance:
/// 1. [`lookup`](TenantCache::lookup) misses and returns the cache's [`CacheEpoch`];
/// 2. the caller reads the registry;
/// 3. [`put_if_current`](TenantCache::put_if_current) caches the record with that epoch, and
///    is refused if an invalidation ran since step 1.
///
/// [`TenantLookup`](crate::lookup::TenantLookup) does exactly this.
///
/// # Contract
/// - After `invalidate(id)` returns, no lookup on this instance returns the old record, and
///   other instances sharing the backend drop it promptly (within one second).
/// - Every `invalidate` advances the epoch that all instances sharing the backend read, no
///   later than it drops the shared record, and even when no record was cached.
/// - `put_if_current(tenant, epoch)` caches nothing, and returns `false`, when an invalidation
///   of `tenant` began on any instance sharing the backend since `epoch` was read (an adapter
///   may also refuse after other invalidations: a refusal only costs a later miss). When it
///   writes and an invalidation runs concurrently, the invalidation still drops the write, on
///   every instance. So a record read from the registry after step 1 never outlives an
///   invalidation that followed a change the read missed.
/// - `put` caches unconditionally: use it only for a record known to be current, and
///   invalidate after every change rather than `put` the new record.
/// - Entries expire after the cache's TTL; memory is bounded.
/// - A lookup by slug or domain never returns a tenant whose slug or domain has changed since.
/// - A hit costs at most one round trip to a shared backend; a miss returns its epoch within
///   that same round trip.
///
/// # Errors
/// `Unavailable` when a shared backend cannot be reached (callers fall back to the registry).
#[async_trait]
pub trait TenantCache: fmt::Debug + Send + Sync + 'static {
    /// The cached tenant, or the epoch to fill the cache with on a miss.
    async fn lookup(&self, key: &CacheKey) -> Result<CacheLookup>;

    /// The cached tenant, if any: [`lookup`](TenantCache::lookup) without the epoch.
    async fn get(&self, key: &CacheKey) -> Result<Option<Tenant>> {
        Ok(self.lookup(key).await?.into_tenant())
    }

    /// Caches a tenant under its id, slug and domain, unconditionally.
    async fn put(&self, tenant: &Tenant) -> Result<()>;

    /// Caches a tenant under its id, slug and domain unless an invalidation ran since `epoch`
    /// was read (see the contract); returns whether it was cached.
    async fn put_if_current(&self, tenant: &Tenant, epoch: CacheEpoch) -> Result<bool>;

    /// Drops a tenant everywhere and advances the epoch.
    async fn invalidate(&self, id: TenantId) -> Result<()>;

    /// Hit and miss counters of this instance.
    fn stats(&self) -> CacheStats;
}
