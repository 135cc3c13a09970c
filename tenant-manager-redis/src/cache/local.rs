//! The in-process layer of the tenant cache: records by id, aliases (slug, domain) to ids, a
//! generation counter that keeps a lookup racing an invalidation from caching the old record,
//! and the subscriber's connection state.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use moka::future::Cache;
use tenant_manager_core::{CacheKey, Tenant, TenantId};
use tokio::sync::Notify;

/// Hit and miss counters by layer.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) local_hits: AtomicU64,
    pub(crate) redis_hits: AtomicU64,
    pub(crate) misses: AtomicU64,
}

/// The local layer, shared by a cache and its subscriber task.
#[derive(Debug)]
pub(crate) struct Local {
    enabled: bool,
    tenants: Cache<TenantId, Arc<Tenant>>,
    aliases: Cache<CacheKey, TenantId>,
    generation: AtomicU64,
    subscribed: AtomicBool,
    subscribed_changed: Notify,
    pub(crate) counters: Counters,
}

impl Local {
    pub(crate) fn new(enabled: bool, capacity: u64, ttl: Duration) -> Self {
        Self {
            enabled,
            tenants: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
            aliases: Cache::builder()
                .max_capacity(capacity.saturating_mul(2))
                .time_to_live(ttl)
                .build(),
            generation: AtomicU64::new(0),
            subscribed: AtomicBool::new(false),
            subscribed_changed: Notify::new(),
            counters: Counters::default(),
        }
    }

    /// Whether invalidations are being received, so local copies can be trusted.
    pub(crate) fn is_subscribed(&self) -> bool {
        self.subscribed.load(Ordering::Acquire)
    }

    /// Records the subscriber's state. On (re)subscription everything cached before is
    /// dropped: invalidations may have been missed while disconnected.
    pub(crate) fn set_subscribed(&self, subscribed: bool) {
        if subscribed {
            self.clear();
        }
        self.subscribed.store(subscribed, Ordering::Release);
        self.subscribed_changed.notify_waiters();
    }

    /// Waits until subscribed, up to `timeout`.
    pub(crate) async fn wait_subscribed(&self, timeout: Duration) -> bool {
        let wait = async {
            loop {
                let changed = self.subscribed_changed.notified();
                if self.is_subscribed() {
                    return;
                }
                changed.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }

    /// The generation before a read from Redis; pass it to [`Local::insert`].
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether local copies may be read and written now: the layer is enabled and the
    /// subscriber is connected.
    fn usable(&self) -> bool {
        self.enabled && self.is_subscribed()
    }

    /// A locally cached tenant, if the layer is usable.
    pub(crate) async fn get(&self, key: &CacheKey) -> Option<Arc<Tenant>> {
        if !self.usable() {
            return None;
        }
        let tenant = match key {
            CacheKey::Id(id) => self.tenants.get(id).await,
            alias => match self.aliases.get(alias).await {
                Some(id) => self.tenants.get(&id).await,
                None => None,
            },
        }?;
        matches(key, &tenant).then_some(tenant)
    }

    /// Caches `tenant` (found by `key`) unless an invalidation happened since `generation`.
    pub(crate) async fn insert(&self, key: &CacheKey, tenant: Arc<Tenant>, generation: u64) {
        if !self.usable() || self.generation() != generation {
            return;
        }
        let id = tenant.id;
        self.tenants.insert(id, tenant).await;
        if !matches!(key, CacheKey::Id(_)) {
            self.aliases.insert(key.clone(), id).await;
        }
        // An invalidation that ran between the check above and the insert bumped the
        // generation first: undo the insert so it cannot outlive the invalidation.
        if self.generation() != generation {
            self.tenants.invalidate(&id).await;
        }
    }

    /// Drops one tenant. Its aliases dangle harmlessly: a lookup through them misses.
    pub(crate) async fn invalidate(&self, id: TenantId) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.tenants.invalidate(&id).await;
    }

    /// Drops everything.
    pub(crate) fn clear(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.tenants.invalidate_all();
        self.aliases.invalidate_all();
    }

    /// Tenants held locally.
    pub(crate) fn entry_count(&self) -> u64 {
        self.tenants.entry_count()
    }
}

/// Whether `tenant` still answers to `key`: a lookup by slug or domain never returns a tenant
/// whose slug or domain has changed since it was cached.
pub(crate) fn matches(key: &CacheKey, tenant: &Tenant) -> bool {
    match key {
        CacheKey::Id(id) => tenant.id == *id,
        CacheKey::Slug(slug) => tenant.slug == *slug,
        CacheKey::Domain(domain) => tenant
            .domain
            .as_deref()
            .is_some_and(|d| d.eq_ignore_ascii_case(domain)),
    }
}
