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

/// Caches tenant records by id, slug and domain.
///
/// # Contract
/// - After `invalidate(id)` returns, no lookup on this instance returns the old record, and
///   other instances sharing the backend drop it promptly (within one second).
/// - Entries expire after the cache's TTL; memory is bounded.
/// - A lookup by slug or domain never returns a tenant whose slug or domain has changed since.
///
/// # Errors
/// `Unavailable` when a shared backend cannot be reached (callers fall back to the registry).
#[async_trait]
pub trait TenantCache: fmt::Debug + Send + Sync + 'static {
    /// The cached tenant, if any.
    async fn get(&self, key: &CacheKey) -> Result<Option<Tenant>>;

    /// Caches a tenant under its id, slug and domain.
    async fn put(&self, tenant: &Tenant) -> Result<()>;

    /// Drops a tenant everywhere.
    async fn invalidate(&self, id: TenantId) -> Result<()>;

    /// Hit and miss counters of this instance.
    fn stats(&self) -> CacheStats;
}
