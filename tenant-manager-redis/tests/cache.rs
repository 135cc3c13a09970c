//! `RedisTenantCache` against the real Redis: the single- and two-instance conformance suites,
//! the local layer, refusal of a suspended tenant by another instance, and a lookup racing
//! another instance's suspension.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tenant_manager_core::lookup::TenantLookup;
use tenant_manager_core::memory::InMemoryRegistry;
use tenant_manager_core::testing::Fixture;
use tenant_manager_core::testing::cache::{CacheCaps, CachePair, sample_tenant};
use tenant_manager_core::{
    CacheKey, Email, Isolation, NewTenant, NewUser, Page, PasswordHash, Result, Tenant,
    TenantCache, TenantId, TenantQuery, TenantRegistry, TenantSlug, TenantStatus, TenantUpdate,
    User, UserId, async_trait,
};
use tenant_manager_redis::{
    Invalidation, InvalidationReceiver, RedisPool, RedisTenantCache, TenantCacheConfig,
};
use tenant_manager_test_support::TestRedis;
use tokio::sync::Notify;

const TTL: Duration = Duration::from_secs(2);

fn config() -> TenantCacheConfig {
    TenantCacheConfig::default()
        .with_ttl(TTL)
        .with_local_ttl(TTL)
        .with_ping_interval(Duration::from_millis(200))
}

async fn cache(pool: &RedisPool) -> RedisTenantCache {
    let cache = RedisTenantCache::new(pool, config()).await.expect("cache");
    assert!(
        cache.wait_subscribed(Duration::from_secs(5)).await,
        "subscribed"
    );
    cache
}

async fn fixture() -> Fixture<dyn TenantCache, TestRedis, CacheCaps> {
    let redis = TestRedis::create().await;
    let pool = support::pool(&redis).await;
    let subject: Arc<dyn TenantCache> = Arc::new(cache(&pool).await);
    Fixture::with_guard(subject, redis).with_caps(CacheCaps::new(TTL))
}

/// Two instances, as two processes would have: separate pools, one Redis, one prefix.
async fn pair() -> Fixture<CachePair, TestRedis, CacheCaps> {
    let redis = TestRedis::create().await;
    let a = cache(&support::pool(&redis).await).await;
    let b = cache(&support::pool(&redis).await).await;
    let pair = CachePair {
        a: Arc::new(a),
        b: Arc::new(b),
    };
    Fixture::with_guard(Arc::new(pair), redis).with_caps(CacheCaps::new(TTL))
}

tenant_manager_core::cache_conformance!(fixture);

mod pair {
    use super::pair;
    tenant_manager_core::cache_pair_conformance!(pair);
}

#[tokio::test]
async fn repeated_lookups_are_served_locally() {
    let redis = TestRedis::create().await;
    let cache = cache(&support::pool(&redis).await).await;
    let t = sample_tenant();
    cache.put(&t).await.expect("put");
    for key in [CacheKey::Id(t.id), CacheKey::Slug(t.slug.clone())] {
        for _ in 0..3 {
            assert_eq!(cache.get(&key).await.expect("get").as_ref(), Some(&t));
        }
    }
    let domain = t.domain.clone().expect("domain").to_ascii_uppercase();
    assert_eq!(
        cache
            .get(&CacheKey::Domain(domain))
            .await
            .expect("get")
            .as_ref(),
        Some(&t),
        "domains are case-insensitive"
    );
    let stats = cache.detailed_stats();
    assert!(stats.subscribed);
    assert_eq!(stats.misses, 0);
    // The slug and domain aliases needed Redis once each; everything else was local.
    assert_eq!((stats.local_hits, stats.redis_hits), (5, 2), "{stats:?}");
    assert_eq!(cache.stats().hits, 7);
}

#[tokio::test]
async fn without_the_local_layer_every_hit_is_served_by_redis() {
    let redis = TestRedis::create().await;
    let pool = support::pool(&redis).await;
    let cache = RedisTenantCache::new(&pool, config().with_local_layer(false))
        .await
        .expect("cache");
    assert!(cache.wait_subscribed(Duration::from_secs(5)).await);
    let t = sample_tenant();
    cache.put(&t).await.expect("put");
    for _ in 0..3 {
        assert_eq!(
            cache.get(&CacheKey::Id(t.id)).await.expect("get").as_ref(),
            Some(&t)
        );
    }
    let stats = cache.detailed_stats();
    assert_eq!((stats.local_hits, stats.redis_hits), (0, 3), "{stats:?}");
}

#[tokio::test]
async fn a_suspended_tenant_is_refused_by_every_instance_within_a_second() {
    let redis = TestRedis::create().await;
    let instances: Vec<RedisTenantCache> = futures::future::join_all(
        (0..3).map(|_| async { cache(&support::pool(&redis).await).await }),
    )
    .await;
    let mut tenant = sample_tenant();
    tenant.status = TenantStatus::Active;
    instances[0].put(&tenant).await.expect("put");
    for instance in &instances {
        let key = CacheKey::Slug(tenant.slug.clone());
        assert_eq!(
            instance.get(&key).await.expect("get").as_ref(),
            Some(&tenant)
        );
    }
    // The registry suspends the tenant, then the cache is told.
    instances[2]
        .invalidate(tenant.id)
        .await
        .expect("invalidate");
    let mut suspended = tenant.clone();
    suspended.status = TenantStatus::Suspended;
    for instance in &instances {
        support::eventually(Duration::from_secs(1), "old record dropped", || async {
            let seen = instance
                .get(&CacheKey::Slug(tenant.slug.clone()))
                .await
                .expect("get");
            seen.is_none_or(|t| t.status == TenantStatus::Suspended)
        })
        .await;
    }
    instances[1].put(&suspended).await.expect("put");
    for instance in &instances {
        let seen = instance.get(&CacheKey::Id(tenant.id)).await.expect("get");
        assert!(seen.is_none_or(|t| t.status == TenantStatus::Suspended));
    }
}

#[tokio::test]
async fn invalidating_everything_reaches_other_instances() {
    let redis = TestRedis::create().await;
    let a = cache(&support::pool(&redis).await).await;
    let b = cache(&support::pool(&redis).await).await;
    let t = sample_tenant();
    b.put(&t).await.expect("put");
    let key = CacheKey::Id(t.id);
    b.get(&key).await.expect("get");
    assert_eq!(b.detailed_stats().local_hits, 1);
    a.invalidate_all_local().await.expect("invalidate all");
    support::eventually(Duration::from_secs(1), "local copy dropped", || async {
        let before = b.detailed_stats().redis_hits;
        let seen = b.get(&key).await.expect("get");
        assert_eq!(seen.as_ref(), Some(&t), "Redis still holds the record");
        b.detailed_stats().redis_hits > before
    })
    .await;
}

#[tokio::test]
async fn bad_settings_are_refused() {
    let redis = TestRedis::create().await;
    let pool = support::pool(&redis).await;
    let bad = TenantCacheConfig::default().with_local_ttl(Duration::from_secs(600));
    let err = RedisTenantCache::new(&pool, bad)
        .await
        .expect_err("local ttl > ttl");
    assert_eq!(err.field(), Some("cache.local_ttl"));
    let unknown = CacheKey::Domain("x".repeat(300));
    let cache = cache(&pool).await;
    assert_eq!(cache.get(&unknown).await.expect("get"), None);
}

/// An in-memory registry whose next tenant read, once armed, waits after reading until released:
/// the reader holds the record as it was, as a slow registry query would.
#[derive(Debug, Default)]
struct PausingRegistry {
    inner: InMemoryRegistry,
    armed: AtomicBool,
    read: Notify,
    release: Notify,
}

impl PausingRegistry {
    /// Returns `value` at once, or after the release when armed (disarming).
    async fn pause<T>(&self, value: T) -> T {
        if self.armed.swap(false, Ordering::SeqCst) {
            self.read.notify_one();
            self.release.notified().await;
        }
        value
    }
}

#[async_trait]
impl TenantRegistry for PausingRegistry {
    async fn create_tenant(&self, tenant: NewTenant) -> Result<Tenant> {
        self.inner.create_tenant(tenant).await
    }
    async fn create_tenant_with_owner(
        &self,
        tenant: NewTenant,
        owner: NewUser,
    ) -> Result<(Tenant, User)> {
        self.inner.create_tenant_with_owner(tenant, owner).await
    }
    async fn get_tenant(&self, id: TenantId) -> Result<Tenant> {
        let read = self.inner.get_tenant(id).await;
        self.pause(read).await
    }
    async fn find_tenant_by_slug(&self, slug: &TenantSlug) -> Result<Option<Tenant>> {
        let read = self.inner.find_tenant_by_slug(slug).await;
        self.pause(read).await
    }
    async fn find_tenant_by_domain(&self, domain: &str) -> Result<Option<Tenant>> {
        let read = self.inner.find_tenant_by_domain(domain).await;
        self.pause(read).await
    }
    async fn list_tenants(&self, query: &TenantQuery) -> Result<Page<Tenant>> {
        self.inner.list_tenants(query).await
    }
    async fn count_tenants(&self, status: Option<TenantStatus>) -> Result<u64> {
        self.inner.count_tenants(status).await
    }
    async fn update_tenant(&self, id: TenantId, update: TenantUpdate) -> Result<Tenant> {
        self.inner.update_tenant(id, update).await
    }
    async fn transition(
        &self,
        id: TenantId,
        to: TenantStatus,
        reason: Option<String>,
    ) -> Result<Tenant> {
        self.inner.transition(id, to, reason).await
    }
    async fn purge_tenant(&self, id: TenantId) -> Result<()> {
        self.inner.purge_tenant(id).await
    }
    async fn create_user(&self, user: NewUser) -> Result<User> {
        self.inner.create_user(user).await
    }
    async fn get_user(&self, id: UserId) -> Result<User> {
        self.inner.get_user(id).await
    }
    async fn find_user_by_email(&self, email: &Email) -> Result<Option<User>> {
        self.inner.find_user_by_email(email).await
    }
    async fn list_users(&self, tenant: TenantId) -> Result<Vec<User>> {
        self.inner.list_users(tenant).await
    }
    async fn find_users_by_email(&self, email: &Email) -> Result<Vec<User>> {
        self.inner.find_users_by_email(email).await
    }
    async fn update_user_role(
        &self,
        tenant: TenantId,
        user: UserId,
        role: tenant_manager_core::Role,
    ) -> Result<User> {
        self.inner.update_user_role(tenant, user, role).await
    }
    async fn delete_user(&self, tenant: TenantId, user: UserId) -> Result<User> {
        self.inner.delete_user(tenant, user).await
    }
    async fn create_invitation(
        &self,
        invitation: tenant_manager_core::NewInvitation,
        max_users: u64,
    ) -> Result<tenant_manager_core::Invitation> {
        self.inner.create_invitation(invitation, max_users).await
    }
    async fn get_invitation(
        &self,
        id: tenant_manager_core::InvitationId,
    ) -> Result<tenant_manager_core::Invitation> {
        self.inner.get_invitation(id).await
    }
    async fn list_invitations(
        &self,
        tenant: TenantId,
    ) -> Result<Vec<tenant_manager_core::Invitation>> {
        self.inner.list_invitations(tenant).await
    }
    async fn revoke_invitation(
        &self,
        tenant: TenantId,
        id: tenant_manager_core::InvitationId,
    ) -> Result<tenant_manager_core::Invitation> {
        self.inner.revoke_invitation(tenant, id).await
    }
    async fn accept_invitation(
        &self,
        id: tenant_manager_core::InvitationId,
        digest: &tenant_manager_core::TokenDigest,
        password_hash: PasswordHash,
    ) -> Result<User> {
        self.inner
            .accept_invitation(id, digest, password_hash)
            .await
    }
    async fn count_seats(&self, tenant: TenantId) -> Result<u64> {
        self.inner.count_seats(tenant).await
    }
    async fn replace_password_hash(
        &self,
        id: UserId,
        current: &PasswordHash,
        new: PasswordHash,
    ) -> Result<User> {
        self.inner.replace_password_hash(id, current, new).await
    }
}

/// Instance X misses and reads the tenant (Active) from the registry; before X fills the
/// cache, instance Y suspends the tenant and invalidates; then X fills. X's fill is refused,
/// so neither instance serves the Active record afterwards.
#[tokio::test]
async fn a_lookup_racing_a_suspension_on_another_instance_does_not_cache_the_old_record() {
    let redis = TestRedis::create().await;
    let registry = Arc::new(PausingRegistry::default());
    let sample = sample_tenant();
    let new = NewTenant::new(sample.slug, "Acme", Isolation::Shared)
        .expect("new tenant")
        .with_domain(sample.domain);
    let tenant = registry.create_tenant(new).await.expect("create");
    for to in [TenantStatus::Provisioning, TenantStatus::Active] {
        registry
            .transition(tenant.id, to, None)
            .await
            .expect("transition");
    }
    let instance = |cache: RedisTenantCache| {
        let cache: Arc<dyn TenantCache> = Arc::new(cache);
        TenantLookup::new(Arc::clone(&registry) as Arc<dyn TenantRegistry>, cache)
    };
    let x = instance(cache(&support::pool(&redis).await).await);
    let y = instance(cache(&support::pool(&redis).await).await);
    let keys = [
        CacheKey::Id(tenant.id),
        CacheKey::Slug(tenant.slug.clone()),
        CacheKey::Domain(tenant.domain.clone().expect("domain")),
    ];

    for key in &keys {
        registry.armed.store(true, Ordering::SeqCst);
        let reader = {
            let (x, key) = (x.clone(), key.clone());
            tokio::spawn(async move { x.get(&key).await })
        };
        tokio::time::timeout(Duration::from_secs(10), registry.read.notified())
            .await
            .expect("X reads the registry");
        // X holds the Active record. Y suspends the tenant, then invalidates.
        registry
            .transition(tenant.id, TenantStatus::Suspended, Some("race".to_owned()))
            .await
            .expect("suspend");
        y.invalidate(tenant.id).await.expect("invalidate on y");
        registry.release.notify_one();
        let read = reader.await.expect("reader").expect("lookup on x");
        assert_eq!(
            read.map(|t| t.status),
            Some(TenantStatus::Active),
            "{key}: X returns what it read before the suspension"
        );

        for (name, lookup) in [("x", &x), ("y", &y)] {
            assert_eq!(
                lookup.cache().get(key).await.expect("cache get"),
                None,
                "{key}: X's fill of the old record was refused ({name})"
            );
        }
        for (name, lookup) in [("x", &x), ("y", &y)] {
            for key in &keys {
                let seen = lookup.get(key).await.expect("lookup").map(|t| t.status);
                assert_eq!(seen, Some(TenantStatus::Suspended), "{key} on {name}");
            }
        }

        // Resume for the next key's race; every instance then serves Active again.
        registry
            .transition(tenant.id, TenantStatus::Active, None)
            .await
            .expect("resume");
        y.invalidate(tenant.id).await.expect("invalidate on y");
        for lookup in [&x, &y] {
            support::eventually(Duration::from_secs(1), "resumed tenant served", || async {
                let seen = lookup.get(key).await.expect("lookup").map(|t| t.status);
                seen == Some(TenantStatus::Active)
            })
            .await;
        }
        y.invalidate(tenant.id).await.expect("invalidate on y");
        // The next race starts from a miss on X.
        support::eventually(Duration::from_secs(1), "X's copy dropped", || async {
            for key in &keys {
                if x.cache().get(key).await.expect("cache get").is_some() {
                    return false;
                }
            }
            true
        })
        .await;
    }
}

/// The next [`Invalidation::Tenant`] on `receiver`, skipping `All` (a resubscription after a
/// dropped connection sends one), within a generous hang limit.
async fn next_tenant(receiver: &mut InvalidationReceiver) -> Option<TenantId> {
    support::within(Duration::from_secs(5), async {
        loop {
            match receiver.recv().await {
                Some(Invalidation::Tenant(id)) => return Some(id),
                Some(_) => {}
                None => return None,
            }
        }
    })
    .await
}

#[tokio::test]
async fn another_instances_invalidations_reach_this_instances_receivers() {
    let redis = TestRedis::create().await;
    let a = cache(&support::pool(&redis).await).await;
    let b = cache(&support::pool(&redis).await).await;
    let mut on_a = a.subscribe_invalidations();
    let mut on_b = b.subscribe_invalidations();
    let t = sample_tenant();
    a.invalidate(t.id).await.expect("invalidate on a");
    assert_eq!(next_tenant(&mut on_b).await, Some(t.id), "B hears A");
    assert_eq!(next_tenant(&mut on_a).await, Some(t.id), "A hears itself");

    // A bulk invalidation reaches B as `All`.
    a.invalidate_all_local().await.expect("invalidate all");
    let seen = support::within(Duration::from_secs(5), on_b.recv()).await;
    assert_eq!(seen, Some(Invalidation::All));

    // The receiver ends with the cache.
    drop(b);
    let ended = support::within(Duration::from_secs(5), async {
        while on_b.recv().await.is_some() {}
    });
    ended.await;
}

#[tokio::test]
async fn a_receiver_that_falls_behind_gets_all_in_place_of_what_it_missed() {
    let redis = TestRedis::create().await;
    let a = cache(&support::pool(&redis).await).await;
    let b = RedisTenantCache::new(
        &support::pool(&redis).await,
        config().with_invalidation_capacity(4),
    )
    .await
    .expect("cache");
    assert!(b.wait_subscribed(Duration::from_secs(5)).await);
    let mut slow = b.subscribe_invalidations();
    let mut reader = b.subscribe_invalidations();
    let ids: Vec<TenantId> = (0..10).map(|_| TenantId::new()).collect();
    for id in &ids {
        a.invalidate(*id).await.expect("invalidate");
    }
    let last = ids[ids.len() - 1];
    // Once `reader` has seen the last id, the subscriber has sent all ten.
    while next_tenant(&mut reader).await != Some(last) {}

    let first = support::within(Duration::from_secs(5), slow.recv()).await;
    assert_eq!(
        first,
        Some(Invalidation::All),
        "six invalidations were lost"
    );
    let mut rest = Vec::new();
    while rest.last() != Some(&last) {
        rest.push(next_tenant(&mut slow).await.expect("receiver open"));
    }
    assert_eq!(rest, ids[ids.len() - 4..], "the newest four remain");

    let bad = TenantCacheConfig::default().with_invalidation_capacity(0);
    let err = RedisTenantCache::new(&support::pool(&redis).await, bad)
        .await
        .expect_err("capacity 0");
    assert_eq!(err.field(), Some("cache.invalidation_capacity"));
}
