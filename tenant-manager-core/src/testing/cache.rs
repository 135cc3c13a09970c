//! Conformance suite of [`TenantCache`]: one case per behaviour, [`cache_conformance!`] for one
//! instance and [`cache_pair_conformance!`] for two instances sharing a backend.
//!
//! The factory declares the cache's configuration with `Fixture::with_caps(CacheCaps::new(ttl))`;
//! the TTL case waits for that TTL, so suites configure a short one (at most 10 s). Every case
//! uses fresh tenants, so cases can share a backend.
//!
//! [`cache_conformance!`]: crate::cache_conformance
//! [`cache_pair_conformance!`]: crate::cache_pair_conformance

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use super::run_concurrently;
use super::support::random_hex;
use crate::domain::{Isolation, NewTenant, Tenant, TenantId, TenantSlug};
use crate::traits::{CacheEpoch, CacheKey, CacheLookup, TenantCache};

/// Expands one `#[tokio::test]` per single-instance case of [`crate::testing::cache`] against
/// the cache `$factory` (an `async fn() -> Fixture<dyn TenantCache, G, CacheCaps>`, for any
/// guard `G`) builds.
#[macro_export]
macro_rules! cache_conformance {
    ($factory:path) => {
        $crate::__conformance_cases_with_caps!($factory; cache; $crate::testing::cache::CacheCaps;
            put_then_get_by_id_slug_and_domain,
            invalidate_drops_every_view,
            a_new_slug_or_domain_retires_the_old_ones,
            stats_count_hits_and_misses,
            entries_expire_after_the_ttl,
            a_fill_after_an_invalidation_is_refused,
            a_fill_racing_an_invalidation_never_survives_it,
        );
    };
}

/// Expands one `#[tokio::test]` per two-instance case of [`crate::testing::cache`] against the
/// pair `$factory` (an `async fn() -> Fixture<CachePair, G, CacheCaps>` that declares [`CacheCaps`]) builds.
#[macro_export]
macro_rules! cache_pair_conformance {
    ($factory:path) => {
        $crate::__conformance_cases_with_caps!($factory; cache; $crate::testing::cache::CacheCaps;
            invalidation_reaches_the_other_instance,
            invalidation_works_in_both_directions,
            a_fill_after_an_invalidation_on_the_other_instance_is_refused,
            a_fill_racing_an_invalidation_on_the_other_instance_never_survives_it,
        );
    };
}

/// How the cache under test is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheCaps {
    /// The TTL the cache was built with.
    pub ttl: Duration,
    /// How long an invalidation may take to reach another instance (the contract's 1 s).
    pub propagation: Duration,
}

impl CacheCaps {
    /// A cache built with `ttl`, propagating invalidations within one second.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            propagation: Duration::from_secs(1),
        }
    }

    /// Sets how long an invalidation may take to reach another instance.
    #[must_use]
    pub fn with_propagation(mut self, propagation: Duration) -> Self {
        self.propagation = propagation;
        self
    }
}

/// Two cache instances sharing one backend (two processes, in production).
#[derive(Debug, Clone)]
pub struct CachePair {
    /// One instance.
    pub a: Arc<dyn TenantCache>,
    /// The other instance.
    pub b: Arc<dyn TenantCache>,
}

/// A tenant with a unique slug and a custom domain, never registered anywhere.
pub fn sample_tenant() -> Tenant {
    let id = TenantId::new();
    let slug = unique_slug();
    let domain = format!("{}.conformance.test", slug.as_str());
    NewTenant::new(slug, "Conformance Inc", Isolation::Shared)
        .expect("valid tenant")
        .with_id(id)
        .with_domain(Some(domain))
        .into_tenant(OffsetDateTime::now_utc())
}

/// A unique slug that is also a valid DNS label (no `_`), as sample domains embed it.
fn unique_slug() -> TenantSlug {
    TenantSlug::new(format!("c{}", random_hex(16))).expect("valid slug")
}

/// The id, slug and domain keys of a tenant.
fn views(t: &Tenant) -> [CacheKey; 3] {
    [
        CacheKey::Id(t.id),
        CacheKey::Slug(t.slug.clone()),
        CacheKey::Domain(t.domain.clone().expect("sample tenants have a domain")),
    ]
}

async fn get(cache: &dyn TenantCache, key: &CacheKey) -> Option<Tenant> {
    cache.get(key).await.expect("cache get")
}

/// The epoch of a lookup of `key` that must miss.
async fn miss(cache: &dyn TenantCache, key: &CacheKey) -> CacheEpoch {
    match cache.lookup(key).await.expect("cache lookup") {
        CacheLookup::Miss(epoch) => epoch,
        CacheLookup::Hit(t) => panic!("{key}: expected a miss, got {t:?}"),
    }
}

/// Asserts that no view of `t` is served by `cache` now.
async fn assert_missing(cache: &dyn TenantCache, t: &Tenant, context: &str) {
    for key in views(t) {
        assert_eq!(get(cache, &key).await, None, "{key} {context}");
    }
}

/// Polls until no view of `t` is served by `cache`, failing after `within`.
async fn assert_dropped_within(cache: &dyn TenantCache, t: &Tenant, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let mut served = Vec::new();
        for key in views(t) {
            if get(cache, &key).await.is_some() {
                served.push(key);
            }
        }
        if served.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still served after {within:?}: {served:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A put tenant is found, equal, by id, slug and domain; an unknown one is not.
pub async fn put_then_get_by_id_slug_and_domain(cache: &dyn TenantCache, _: &CacheCaps) {
    let t = sample_tenant();
    for key in views(&t) {
        assert_eq!(get(cache, &key).await, None, "{key} before put");
    }
    cache.put(&t).await.expect("put");
    for key in views(&t) {
        assert_eq!(get(cache, &key).await.as_ref(), Some(&t), "{key}");
    }
    let stranger = sample_tenant();
    for key in views(&stranger) {
        assert_eq!(get(cache, &key).await, None, "{key}");
    }
}

/// `invalidate(id)` drops the id, slug and domain views at once, and only that tenant's.
pub async fn invalidate_drops_every_view(cache: &dyn TenantCache, _: &CacheCaps) {
    let (t, bystander) = (sample_tenant(), sample_tenant());
    cache.put(&t).await.expect("put");
    cache.put(&bystander).await.expect("put");
    cache.invalidate(t.id).await.expect("invalidate");
    for key in views(&t) {
        assert_eq!(get(cache, &key).await, None, "{key} after invalidate");
    }
    for key in views(&bystander) {
        assert_eq!(get(cache, &key).await.as_ref(), Some(&bystander), "{key}");
    }
    cache
        .invalidate(TenantId::new())
        .await
        .expect("invalidating an unknown tenant is fine");
}

/// After a put of the record with a new slug and domain, the old slug and domain miss and the
/// new ones serve the new record.
pub async fn a_new_slug_or_domain_retires_the_old_ones(cache: &dyn TenantCache, _: &CacheCaps) {
    let old = sample_tenant();
    cache.put(&old).await.expect("put");
    let mut new = old.clone();
    new.slug = unique_slug();
    new.domain = Some(format!("{}.conformance.test", new.slug.as_str()));
    new.name = "Renamed Inc".to_owned();
    cache.put(&new).await.expect("put");
    let [_, old_slug, old_domain] = views(&old);
    assert_eq!(get(cache, &old_slug).await, None, "old slug");
    assert_eq!(get(cache, &old_domain).await, None, "old domain");
    for key in views(&new) {
        assert_eq!(get(cache, &key).await.as_ref(), Some(&new), "{key}");
    }
}

/// Each lookup that finds a tenant counts a hit, each that finds nothing a miss.
pub async fn stats_count_hits_and_misses(cache: &dyn TenantCache, _: &CacheCaps) {
    let t = sample_tenant();
    cache.put(&t).await.expect("put");
    let before = cache.stats();
    get(cache, &CacheKey::Id(t.id)).await.expect("hit");
    get(cache, &CacheKey::Slug(t.slug.clone()))
        .await
        .expect("hit");
    assert!(get(cache, &CacheKey::Id(TenantId::new())).await.is_none());
    let after = cache.stats();
    assert_eq!(after.hits - before.hits, 2, "{before:?} -> {after:?}");
    assert_eq!(after.misses - before.misses, 1, "{before:?} -> {after:?}");
    assert!((0.0..=1.0).contains(&after.hit_rate()));
}

/// An entry is served within its TTL and gone after it.
pub async fn entries_expire_after_the_ttl(cache: &dyn TenantCache, caps: &CacheCaps) {
    assert!(
        caps.ttl <= Duration::from_secs(10),
        "configure the cache under test with a TTL of at most 10 s (got {:?})",
        caps.ttl
    );
    let t = sample_tenant();
    cache.put(&t).await.expect("put");
    assert!(
        get(cache, &CacheKey::Id(t.id)).await.is_some(),
        "fresh entry"
    );
    tokio::time::sleep(caps.ttl + caps.ttl / 2 + Duration::from_millis(50)).await;
    for key in views(&t) {
        assert_eq!(get(cache, &key).await, None, "{key} after the TTL");
    }
}

/// Both instances hold a tenant; invalidating it on `a` drops it on `a` at once and on `b`
/// within the propagation time.
pub async fn invalidation_reaches_the_other_instance(pair: &CachePair, caps: &CacheCaps) {
    let t = sample_tenant();
    pair.a.put(&t).await.expect("put on a");
    pair.b.put(&t).await.expect("put on b");
    assert_eq!(get(&*pair.b, &CacheKey::Id(t.id)).await.as_ref(), Some(&t));
    pair.a.invalidate(t.id).await.expect("invalidate on a");
    for key in views(&t) {
        assert_eq!(get(&*pair.a, &key).await, None, "{key} on a");
    }
    assert_dropped_within(&*pair.b, &t, caps.propagation).await;
}

/// Invalidation from `b` reaches `a` too, and a record put again afterwards is served again.
pub async fn invalidation_works_in_both_directions(pair: &CachePair, caps: &CacheCaps) {
    let t = sample_tenant();
    pair.a.put(&t).await.expect("put on a");
    pair.b.put(&t).await.expect("put on b");
    pair.b.invalidate(t.id).await.expect("invalidate on b");
    assert_dropped_within(&*pair.a, &t, caps.propagation).await;
    assert_dropped_within(&*pair.b, &t, Duration::ZERO).await;

    let mut renamed = t.clone();
    renamed.name = "Renamed Inc".to_owned();
    pair.b.put(&renamed).await.expect("put on b");
    assert_eq!(
        get(&*pair.b, &CacheKey::Id(t.id)).await.as_ref(),
        Some(&renamed)
    );
    let on_a = get(&*pair.a, &CacheKey::Id(t.id)).await;
    assert!(
        on_a.is_none() || on_a.as_ref() == Some(&renamed),
        "a never serves the invalidated record: {on_a:?}"
    );
}

/// A lookup misses with an epoch; after an invalidation of the tenant, a fill with that epoch is
/// refused and caches nothing. A fill with the epoch of a later miss is cached, and a lookup
/// then hits.
pub async fn a_fill_after_an_invalidation_is_refused(cache: &dyn TenantCache, _: &CacheCaps) {
    for view in 0..3 {
        let t = sample_tenant();
        let key = views(&t)[view].clone();
        let epoch = miss(cache, &key).await;
        cache.invalidate(t.id).await.expect("invalidate");
        let filled = cache.put_if_current(&t, epoch).await.expect("fill");
        assert!(
            !filled,
            "{key}: a fill read before the invalidation was accepted"
        );
        assert_missing(cache, &t, "after a refused fill").await;

        let epoch = miss(cache, &key).await;
        assert!(
            cache.put_if_current(&t, epoch).await.expect("fill"),
            "{key}"
        );
        match cache.lookup(&key).await.expect("lookup") {
            CacheLookup::Hit(found) => assert_eq!(found, t, "{key}"),
            CacheLookup::Miss(_) => panic!("{key}: an accepted fill is not served"),
        }
    }
}

/// Fills racing invalidations of their tenants (each invalidation begins after the fill's
/// epoch was read): once both are done, the record is gone, whichever ran first.
pub async fn a_fill_racing_an_invalidation_never_survives_it(
    cache: &dyn TenantCache,
    _: &CacheCaps,
) {
    const RACES: usize = 32;
    let tenants: Vec<Tenant> = (0..RACES).map(|_| sample_tenant()).collect();
    let mut epochs = Vec::with_capacity(RACES);
    for t in &tenants {
        epochs.push(miss(cache, &CacheKey::Id(t.id)).await);
    }
    run_concurrently(RACES * 2, |i| {
        let (t, epoch) = (&tenants[i / 2], epochs[i / 2]);
        async move {
            if i % 2 == 0 {
                cache.put_if_current(t, epoch).await.map(drop)
            } else {
                cache.invalidate(t.id).await
            }
        }
    })
    .into_iter()
    .for_each(|result| result.expect("fill or invalidate"));
    for t in &tenants {
        assert_missing(cache, t, "after a fill raced its invalidation").await;
    }
}

/// Instance `a` misses with an epoch; `b` invalidates the tenant; `a`'s fill with that epoch is
/// refused, and neither instance serves the record. A fill after a fresh miss on `a` is then
/// served by `b` too.
pub async fn a_fill_after_an_invalidation_on_the_other_instance_is_refused(
    pair: &CachePair,
    _: &CacheCaps,
) {
    let t = sample_tenant();
    let key = CacheKey::Slug(t.slug.clone());
    let epoch = miss(&*pair.a, &key).await;
    pair.b.invalidate(t.id).await.expect("invalidate on b");
    let filled = pair.a.put_if_current(&t, epoch).await.expect("fill on a");
    assert!(
        !filled,
        "a's fill read before b's invalidation was accepted"
    );
    assert_missing(&*pair.a, &t, "on a after a refused fill").await;
    assert_missing(&*pair.b, &t, "on b after a refused fill").await;

    let epoch = miss(&*pair.a, &key).await;
    assert!(pair.a.put_if_current(&t, epoch).await.expect("fill on a"));
    for key in views(&t) {
        assert_eq!(get(&*pair.b, &key).await.as_ref(), Some(&t), "{key} on b");
    }
}

/// Fills on `a` racing invalidations on `b` (each invalidation begins after the fill's epoch
/// was read): once both are done, `b` serves none of the records and `a` drops them within the
/// propagation time.
pub async fn a_fill_racing_an_invalidation_on_the_other_instance_never_survives_it(
    pair: &CachePair,
    caps: &CacheCaps,
) {
    const RACES: usize = 32;
    let tenants: Vec<Tenant> = (0..RACES).map(|_| sample_tenant()).collect();
    let mut epochs = Vec::with_capacity(RACES);
    for t in &tenants {
        epochs.push(miss(&*pair.a, &CacheKey::Id(t.id)).await);
    }
    run_concurrently(RACES * 2, |i| {
        let (t, epoch) = (&tenants[i / 2], epochs[i / 2]);
        async move {
            if i % 2 == 0 {
                pair.a.put_if_current(t, epoch).await.map(drop)
            } else {
                pair.b.invalidate(t.id).await
            }
        }
    })
    .into_iter()
    .for_each(|result| result.expect("fill or invalidate"));
    for t in &tenants {
        assert_missing(&*pair.b, t, "on b after a fill on a raced its invalidation").await;
        assert_dropped_within(&*pair.a, t, caps.propagation).await;
    }
}
