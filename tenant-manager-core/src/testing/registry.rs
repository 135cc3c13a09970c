//! Conformance suite of [`TenantRegistry`].
//!
//! An adapter runs it by writing a factory that returns a fresh registry (and whatever must
//! live as long as it, such as a test database, as the fixture's guard), then expanding the
//! macro in a test file:
//!
//! ```text
//! async fn registry() -> Fixture<dyn TenantRegistry> {
//!     let db = TestDatabase::create().await;
//!     let registry = PostgresRegistry::connect(db.url()).await.unwrap();
//!     Fixture::with_guard(Arc::new(registry), db)
//! }
//! tenant_manager_core::registry_conformance!(registry);
//! ```
//!
//! Each case is also a plain `async fn(&dyn TenantRegistry)` in this module, to call by hand.
//! Cases create tenants with random slugs, e-mails and (for listings) a random plan, so they
//! assert only on what they created themselves; counts are compared before and after.

use super::run_concurrently;
use crate::domain::{
    Email, Isolation, NewTenant, NewUser, PasswordHash, Placement, Plan, QuotaPolicy, Role,
    ServerId, TenantId, TenantQuery, TenantSlug, TenantStatus, TenantUpdate, User, UserId,
};
use crate::error::{Entity, Error, Result};
use crate::traits::TenantRegistry;

/// Expands one `#[tokio::test]` per registry case, each on a fresh fixture from `$factory`
/// (`async fn() -> Fixture<dyn TenantRegistry>`).
#[macro_export]
macro_rules! registry_conformance {
    ($factory:path) => {
        $crate::__conformance_cases!($factory; registry;
            create_and_get,
            find_by_slug_and_domain,
            create_with_owner_and_find_user,
            slug_conflict,
            domain_conflict,
            email_conflict_keeps_nothing,
            id_conflict,
            concurrent_same_email_one_winner,
            concurrent_same_slug_one_winner,
            racing_transitions_one_winner,
            all_transitions_follow_the_life_cycle,
            transition_records_reason,
            pagination_without_skips_or_repeats,
            count_by_status,
            purge_only_after_deleted,
            update_validates_and_applies,
            update_domain_conflict,
            bad_input_is_refused_with_field,
            unicode_and_sql_metacharacters_are_stored_verbatim,
            lookups_with_bad_input_find_nothing,
            users_listed_oldest_first,
            unknown_ids_are_not_found,
            password_hash_is_replaced_only_while_unchanged,
            racing_password_hash_replacements_one_winner,
        );
    };
}

// ---------------------------------------------------------------------------------------------
// Helpers shared by the suites.

/// A random hex string of `len` characters (at most 32).
pub fn random_hex(len: usize) -> String {
    let mut s = uuid::Uuid::new_v4().simple().to_string();
    s.truncate(len);
    s
}

/// A valid slug that no other test uses: `<prefix>_<12 hex>`.
pub fn unique_slug(prefix: &str) -> TenantSlug {
    TenantSlug::new(format!("{prefix}_{}", random_hex(12))).expect("valid slug")
}

/// A valid e-mail address that no other test uses.
pub fn unique_email(tag: &str) -> Email {
    Email::new(&format!("{tag}.{}@example.com", random_hex(12))).expect("valid e-mail")
}

/// A new tenant with a unique slug and the conventional placement.
pub fn sample_tenant(isolation: Isolation) -> NewTenant {
    NewTenant::new(unique_slug("cf"), "Conformance Tenant", isolation).expect("valid tenant")
}

/// A user of `tenant` with a unique e-mail and a dummy (well-formed) password hash.
pub fn sample_user(tenant: TenantId, role: Role) -> NewUser {
    NewUser::new(
        tenant,
        unique_email("user"),
        role,
        PasswordHash::from_phc("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"),
    )
}

/// Asserts `InvalidInput` on `field`.
#[track_caller]
pub fn expect_invalid<T: std::fmt::Debug>(result: Result<T>, field: &str) {
    match result {
        Err(Error::InvalidInput { field: f, .. }) if f == field => {}
        other => panic!("expected InvalidInput on {field}, got {other:?}"),
    }
}

/// Asserts `Conflict` on `field`.
#[track_caller]
pub fn expect_conflict<T: std::fmt::Debug>(result: Result<T>, field: &str) {
    match result {
        Err(Error::Conflict { field: f, .. }) if f == field => {}
        other => panic!("expected Conflict on {field}, got {other:?}"),
    }
}

/// Asserts `NotFound` of `entity`.
#[track_caller]
pub fn expect_not_found<T: std::fmt::Debug>(result: Result<T>, entity: Entity) {
    match result {
        Err(Error::NotFound { entity: e, .. }) if e == entity => {}
        other => panic!("expected NotFound {entity}, got {other:?}"),
    }
}

/// Asserts `InvalidTransition` from `from` to `to`.
#[track_caller]
fn expect_invalid_transition<T: std::fmt::Debug>(
    result: Result<T>,
    from: TenantStatus,
    to: TenantStatus,
) {
    match result {
        Err(Error::InvalidTransition { from: f, to: t, .. }) if f == from && t == to => {}
        other => panic!("expected InvalidTransition {from} -> {to}, got {other:?}"),
    }
}

/// Legal transitions that bring a new (`Pending`) tenant to `status`.
fn path_to(status: TenantStatus) -> &'static [TenantStatus] {
    use TenantStatus::*;
    match status {
        Pending => &[],
        Provisioning => &[Provisioning],
        Active => &[Provisioning, Active],
        Suspended => &[Provisioning, Active, Suspended],
        Failed => &[Provisioning, Failed],
        Deleting => &[Deleting],
        Deleted => &[Deleting, Deleted],
    }
}

/// Creates a tenant from `new` and walks it to `status`.
async fn tenant_in(
    r: &dyn TenantRegistry,
    new: NewTenant,
    status: TenantStatus,
) -> crate::domain::Tenant {
    let mut tenant = r.create_tenant(new).await.expect("create tenant");
    for step in path_to(status) {
        tenant = r
            .transition(tenant.id, *step, None)
            .await
            .expect("legal transition");
    }
    assert_eq!(tenant.status, status);
    tenant
}

// ---------------------------------------------------------------------------------------------
// Cases.

/// A created tenant is `Pending`, carries what was asked, and reads back identically.
pub async fn create_and_get(r: &dyn TenantRegistry) {
    let new = sample_tenant(Isolation::Schema)
        .with_plan(Plan::new("pro").unwrap())
        .with_region(Some("eu-west-1".into()));
    let created = r.create_tenant(new.clone()).await.expect("create");
    assert_eq!(created.id, new.id);
    assert_eq!(created.slug, new.slug);
    assert_eq!(created.name, "Conformance Tenant");
    assert_eq!(created.status, TenantStatus::Pending);
    assert_eq!(created.status_reason, None);
    assert_eq!(created.plan.as_str(), "pro");
    assert_eq!(created.isolation, Isolation::Schema);
    assert_eq!(created.placement, new.placement);
    assert_eq!(created.region.as_deref(), Some("eu-west-1"));
    assert_eq!(created.quota, None);
    assert_eq!(created.created_at, created.updated_at);
    let got = r.get_tenant(created.id).await.expect("get");
    assert_eq!(got, created);
}

/// Slug lookups are exact; domain lookups ignore case; unknown values find nothing.
pub async fn find_by_slug_and_domain(r: &dyn TenantRegistry) {
    let domain = format!("app-{}.example.com", random_hex(8));
    let created = r
        .create_tenant(sample_tenant(Isolation::Shared).with_domain(Some(domain.clone())))
        .await
        .expect("create");
    assert_eq!(created.domain.as_deref(), Some(domain.as_str()));
    let by_slug = r.find_tenant_by_slug(&created.slug).await.expect("by slug");
    assert_eq!(by_slug.as_ref().map(|t| t.id), Some(created.id));
    let by_domain = r.find_tenant_by_domain(&domain).await.expect("by domain");
    assert_eq!(by_domain.map(|t| t.id), Some(created.id));
    let upper = r
        .find_tenant_by_domain(&domain.to_ascii_uppercase())
        .await
        .expect("by upper-case domain");
    assert_eq!(upper.map(|t| t.id), Some(created.id));
    assert_eq!(
        r.find_tenant_by_slug(&unique_slug("none"))
            .await
            .expect("unknown slug"),
        None
    );
    assert_eq!(
        r.find_tenant_by_domain("nobody.example.com")
            .await
            .expect("unknown domain"),
        None
    );
    // A domain given in upper case is stored lower case.
    let mixed = format!("Mixed-{}.Example.COM", random_hex(8));
    let t = r
        .create_tenant(sample_tenant(Isolation::Shared).with_domain(Some(mixed.clone())))
        .await
        .expect("create with mixed-case domain");
    assert_eq!(t.domain, Some(mixed.to_ascii_lowercase()));
    let found = r.find_tenant_by_domain(&mixed).await.expect("lookup");
    assert_eq!(found.map(|f| f.id), Some(t.id));
}

/// A tenant and its owner are created together and found by every key.
pub async fn create_with_owner_and_find_user(r: &dyn TenantRegistry) {
    let new = sample_tenant(Isolation::Database);
    let owner = sample_user(new.id, Role::Owner);
    let (tenant, user) = r
        .create_tenant_with_owner(new.clone(), owner.clone())
        .await
        .expect("create with owner");
    assert_eq!(tenant.id, new.id);
    assert_eq!(tenant.status, TenantStatus::Pending);
    assert_eq!(user.id, owner.id);
    assert_eq!(user.tenant_id, tenant.id);
    assert_eq!(user.email, owner.email);
    assert_eq!(user.role, Role::Owner);
    assert_eq!(user.password_hash, owner.password_hash);
    assert_eq!(r.get_tenant(tenant.id).await.expect("get tenant"), tenant);
    assert_eq!(r.get_user(user.id).await.expect("get user"), user);
    assert_eq!(
        r.find_user_by_email(&owner.email).await.expect("by email"),
        Some(user.clone())
    );
    assert_eq!(r.list_users(tenant.id).await.expect("list"), vec![user]);
    assert_eq!(
        r.find_user_by_email(&unique_email("nobody"))
            .await
            .expect("unknown email"),
        None
    );
    // The owner must belong to the tenant being created.
    let other = sample_tenant(Isolation::Database);
    let stray = sample_user(TenantId::new(), Role::Owner);
    expect_invalid(
        r.create_tenant_with_owner(other.clone(), stray).await,
        "tenant_id",
    );
    assert_eq!(
        r.find_tenant_by_slug(&other.slug).await.expect("slug"),
        None
    );
}

/// A taken slug is a conflict on `slug`.
pub async fn slug_conflict(r: &dyn TenantRegistry) {
    let first = r
        .create_tenant(sample_tenant(Isolation::Schema))
        .await
        .expect("first");
    let again = NewTenant::new(first.slug.clone(), "Other", Isolation::Shared).unwrap();
    expect_conflict(r.create_tenant(again.clone()).await, "slug");
    expect_not_found(r.get_tenant(again.id).await, Entity::Tenant);
    let owner = sample_user(again.id, Role::Owner);
    let email = owner.email.clone();
    expect_conflict(r.create_tenant_with_owner(again, owner).await, "slug");
    assert_eq!(r.find_user_by_email(&email).await.expect("email"), None);
}

/// A taken domain, in any case, is a conflict on `domain`, and nothing is created.
pub async fn domain_conflict(r: &dyn TenantRegistry) {
    let domain = format!("shop-{}.example.com", random_hex(8));
    r.create_tenant(sample_tenant(Isolation::Shared).with_domain(Some(domain.clone())))
        .await
        .expect("first");
    let second = sample_tenant(Isolation::Shared).with_domain(Some(domain.to_ascii_uppercase()));
    expect_conflict(r.create_tenant(second.clone()).await, "domain");
    assert_eq!(
        r.find_tenant_by_slug(&second.slug).await.expect("slug"),
        None
    );
    // The failed creation released the slug it had claimed.
    let retry = NewTenant::new(second.slug.clone(), "Retry", Isolation::Shared).unwrap();
    r.create_tenant(retry).await.expect("slug free again");
}

/// A taken e-mail is a conflict on `email`; the tenant of the failed registration does not
/// exist afterwards (atomicity), and its slug and domain stay free.
pub async fn email_conflict_keeps_nothing(r: &dyn TenantRegistry) {
    let first = sample_tenant(Isolation::Schema);
    let owner = sample_user(first.id, Role::Owner);
    let email = owner.email.clone();
    r.create_tenant_with_owner(first, owner)
        .await
        .expect("first");
    let domain = format!("d-{}.example.com", random_hex(8));
    let second = sample_tenant(Isolation::Schema).with_domain(Some(domain.clone()));
    let mut dup = sample_user(second.id, Role::Owner);
    dup.email = email.clone();
    expect_conflict(
        r.create_tenant_with_owner(second.clone(), dup).await,
        "email",
    );
    expect_not_found(r.get_tenant(second.id).await, Entity::Tenant);
    assert_eq!(
        r.find_tenant_by_slug(&second.slug).await.expect("slug"),
        None
    );
    assert_eq!(
        r.find_tenant_by_domain(&domain).await.expect("domain"),
        None
    );
    // The slug and domain of the failed registration are free.
    let retry = NewTenant::new(second.slug.clone(), "Retry", Isolation::Schema)
        .unwrap()
        .with_domain(Some(domain));
    r.create_tenant(retry).await.expect("slug and domain free");
    // E-mails are unique across tenants for plain users too.
    let other = r
        .create_tenant(sample_tenant(Isolation::Shared))
        .await
        .expect("other tenant");
    let mut member = sample_user(other.id, Role::Member);
    member.email = email;
    expect_conflict(r.create_user(member).await, "email");
}

/// A taken tenant id is a conflict on `id`.
pub async fn id_conflict(r: &dyn TenantRegistry) {
    let first = r
        .create_tenant(sample_tenant(Isolation::Shared))
        .await
        .expect("first");
    let same_id = sample_tenant(Isolation::Shared).with_id(first.id);
    expect_conflict(r.create_tenant(same_id.clone()).await, "id");
    assert_eq!(
        r.find_tenant_by_slug(&same_id.slug).await.expect("slug"),
        None
    );
    assert_eq!(r.get_tenant(first.id).await.expect("get"), first);
}

/// 100 concurrent registrations with one e-mail: exactly one succeeds, the others conflict
/// on `email`, and none of the losers' tenants exists.
pub async fn concurrent_same_email_one_winner(r: &dyn TenantRegistry) {
    let email = unique_email("race");
    let before = r.count_tenants(None).await.expect("count");
    let attempts: Vec<(NewTenant, NewUser)> = (0..100)
        .map(|_| {
            let tenant = sample_tenant(Isolation::Shared);
            let mut owner = sample_user(tenant.id, Role::Owner);
            owner.email = email.clone();
            (tenant, owner)
        })
        .collect();
    let results = run_concurrently(attempts.len(), |i| {
        let (tenant, owner) = attempts[i].clone();
        async move { r.create_tenant_with_owner(tenant, owner).await }
    });
    let mut winners = 0;
    for (result, (tenant, _)) in results.into_iter().zip(&attempts) {
        match result {
            Ok(_) => winners += 1,
            Err(e) => {
                assert_eq!(e.field(), Some("email"), "{e:?}");
                assert!(matches!(e, Error::Conflict { .. }), "{e:?}");
                expect_not_found(r.get_tenant(tenant.id).await, Entity::Tenant);
            }
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(r.count_tenants(None).await.expect("count"), before + 1);
    let user = r
        .find_user_by_email(&email)
        .await
        .expect("email")
        .expect("winner's owner");
    r.get_tenant(user.tenant_id).await.expect("winner's tenant");
}

/// 100 concurrent creations with one slug: exactly one succeeds, the others conflict on
/// `slug`.
pub async fn concurrent_same_slug_one_winner(r: &dyn TenantRegistry) {
    let slug = unique_slug("race");
    let results = run_concurrently(100, |_| {
        let new = NewTenant::new(slug.clone(), "Racer", Isolation::Schema).unwrap();
        async move { r.create_tenant(new).await }
    });
    let mut winner = None;
    for result in results {
        match result {
            Ok(t) => {
                assert!(winner.is_none(), "two winners");
                winner = Some(t);
            }
            Err(e) => assert_eq!(e.field(), Some("slug"), "{e:?}"),
        }
    }
    let winner = winner.expect("one winner");
    let found = r.find_tenant_by_slug(&slug).await.expect("slug");
    assert_eq!(found.map(|t| t.id), Some(winner.id));
}

/// Concurrent transitions from the same status: exactly one wins, the others get
/// `InvalidTransition` from the winner's status.
pub async fn racing_transitions_one_winner(r: &dyn TenantRegistry) {
    use TenantStatus::*;
    // Targets chosen so that, once one has won, none of them is legal any more.
    for (from, targets) in [
        (Provisioning, [Active, Failed]),
        (Active, [Suspended, Suspended]),
        (Suspended, [Active, Active]),
    ] {
        for a in targets {
            for b in targets {
                assert!(
                    !a.can_transition_to(b),
                    "bad race design: {a} -> {b} is legal"
                );
            }
        }
        let tenant = tenant_in(r, sample_tenant(Isolation::Shared), from).await;
        let results = run_concurrently(32, |i| {
            let to = targets[i % 2];
            async move { r.transition(tenant.id, to, None).await }
        });
        let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "from {from}: {results:?}");
        let winner = winners[0].status;
        for result in &results {
            if let Err(e) = result {
                assert!(
                    matches!(e, Error::InvalidTransition { from, .. } if *from == winner),
                    "{e:?}"
                );
            }
        }
        assert_eq!(r.get_tenant(tenant.id).await.expect("get").status, winner);
    }
}

/// Every (from, to) pair: legal ones apply, illegal ones fail with `InvalidTransition` and
/// change nothing. Unknown tenants are `NotFound`.
pub async fn all_transitions_follow_the_life_cycle(r: &dyn TenantRegistry) {
    for from in TenantStatus::ALL {
        for to in TenantStatus::ALL {
            let tenant = tenant_in(r, sample_tenant(Isolation::Schema), from).await;
            let result = r.transition(tenant.id, to, None).await;
            if from.can_transition_to(to) {
                let moved = result.unwrap_or_else(|e| panic!("{from} -> {to}: {e:?}"));
                assert_eq!(moved.status, to);
                assert!(moved.updated_at >= tenant.updated_at);
                assert_eq!(r.get_tenant(tenant.id).await.expect("get"), moved);
            } else {
                expect_invalid_transition(result, from, to);
                assert_eq!(r.get_tenant(tenant.id).await.expect("get"), tenant);
            }
        }
    }
    expect_not_found(
        r.transition(TenantId::new(), TenantStatus::Provisioning, None)
            .await,
        Entity::Tenant,
    );
}

/// A transition records its reason, and a transition without one clears it.
pub async fn transition_records_reason(r: &dyn TenantRegistry) {
    let tenant = tenant_in(
        r,
        sample_tenant(Isolation::Shared),
        TenantStatus::Provisioning,
    )
    .await;
    let failed = r
        .transition(
            tenant.id,
            TenantStatus::Failed,
            Some("could not create schema: permission denied".into()),
        )
        .await
        .expect("fail");
    assert_eq!(
        failed.status_reason.as_deref(),
        Some("could not create schema: permission denied")
    );
    let retry = r
        .transition(tenant.id, TenantStatus::Provisioning, None)
        .await
        .expect("retry");
    assert_eq!(retry.status_reason, None);
    assert_eq!(
        r.get_tenant(tenant.id).await.expect("get").status_reason,
        None
    );
}

/// Paging through a filtered listing returns every match once, in id order, with no
/// skip or repeat, and `next` is `None` on the last page. Bad limits are refused.
pub async fn pagination_without_skips_or_repeats(r: &dyn TenantRegistry) {
    let plan = Plan::new(format!("p{}", random_hex(12))).unwrap();
    let mut all = Vec::new();
    for i in 0..23 {
        let isolation = [Isolation::Schema, Isolation::Shared, Isolation::Database][i % 3];
        let status = [TenantStatus::Pending, TenantStatus::Active][i % 2];
        let new = sample_tenant(isolation).with_plan(plan.clone());
        all.push(tenant_in(r, new, status).await);
    }
    let filters = [
        TenantQuery::default().with_plan(Some(plan.clone())),
        TenantQuery::default()
            .with_plan(Some(plan.clone()))
            .with_status(Some(TenantStatus::Active)),
        TenantQuery::default()
            .with_plan(Some(plan.clone()))
            .with_isolation(Some(Isolation::Schema)),
        TenantQuery::default()
            .with_plan(Some(plan.clone()))
            .with_isolation(Some(Isolation::Shared))
            .with_status(Some(TenantStatus::Pending)),
    ];
    for query in filters {
        let expected: Vec<TenantId> = {
            let mut ids: Vec<TenantId> = all
                .iter()
                .filter(|t| query.status.is_none_or(|s| s == t.status))
                .filter(|t| query.isolation.is_none_or(|i| i == t.isolation))
                .map(|t| t.id)
                .collect();
            ids.sort();
            ids
        };
        for limit in [1, 4, 7, 100] {
            let mut seen = Vec::new();
            let mut query = query.clone().with_limit(limit).with_after(None);
            loop {
                let page = r.list_tenants(&query).await.expect("page");
                assert!(page.items.len() <= limit as usize);
                for t in &page.items {
                    assert!(query.status.is_none_or(|s| s == t.status));
                    assert!(query.isolation.is_none_or(|i| i == t.isolation));
                    assert_eq!(t.plan, plan);
                }
                seen.extend(page.items.iter().map(|t| t.id));
                match page.next {
                    Some(next) => {
                        assert_eq!(Some(next), page.items.last().map(|t| t.id));
                        query = query.with_after(Some(next));
                    }
                    None => break,
                }
            }
            assert_eq!(seen, expected, "limit {limit}");
        }
    }
    // After the last tenant: an empty last page.
    let last = all.iter().map(|t| t.id).max().unwrap();
    let page = r
        .list_tenants(
            &TenantQuery::default()
                .with_plan(Some(plan))
                .with_after(Some(last)),
        )
        .await
        .expect("empty page");
    assert!(page.items.is_empty());
    assert_eq!(page.next, None);
    expect_invalid(
        r.list_tenants(&TenantQuery::default().with_limit(0)).await,
        "limit",
    );
    expect_invalid(
        r.list_tenants(&TenantQuery::default().with_limit(crate::domain::MAX_PAGE_SIZE + 1))
            .await,
        "limit",
    );
}

/// Counts follow creations and transitions; the total leaves out `Deleted` tenants.
pub async fn count_by_status(r: &dyn TenantRegistry) {
    let count =
        |status: Option<TenantStatus>| async move { r.count_tenants(status).await.expect("count") };
    let (all, pending, active, deleted) = (
        count(None).await,
        count(Some(TenantStatus::Pending)).await,
        count(Some(TenantStatus::Active)).await,
        count(Some(TenantStatus::Deleted)).await,
    );
    tenant_in(r, sample_tenant(Isolation::Shared), TenantStatus::Pending).await;
    tenant_in(r, sample_tenant(Isolation::Shared), TenantStatus::Active).await;
    tenant_in(r, sample_tenant(Isolation::Shared), TenantStatus::Active).await;
    tenant_in(r, sample_tenant(Isolation::Shared), TenantStatus::Deleted).await;
    assert_eq!(count(None).await, all + 3);
    assert_eq!(count(Some(TenantStatus::Pending)).await, pending + 1);
    assert_eq!(count(Some(TenantStatus::Active)).await, active + 2);
    assert_eq!(count(Some(TenantStatus::Deleted)).await, deleted + 1);
}

/// Only a `Deleted` tenant can be purged (otherwise `InvalidTransition` from its status to
/// `Deleted`); until then it is still readable. Purging removes it and its users and frees
/// its slug, domain and e-mails.
pub async fn purge_only_after_deleted(r: &dyn TenantRegistry) {
    let domain = format!("gone-{}.example.com", random_hex(8));
    let new = sample_tenant(Isolation::Schema).with_domain(Some(domain.clone()));
    let owner = sample_user(new.id, Role::Owner);
    let (tenant, user) = r
        .create_tenant_with_owner(new, owner)
        .await
        .expect("create");
    let member = r
        .create_user(sample_user(tenant.id, Role::Member))
        .await
        .expect("member");
    for step in [TenantStatus::Provisioning, TenantStatus::Active] {
        r.transition(tenant.id, step, None).await.expect("walk");
    }
    expect_invalid_transition(
        r.purge_tenant(tenant.id).await,
        TenantStatus::Active,
        TenantStatus::Deleted,
    );
    r.transition(tenant.id, TenantStatus::Deleting, None)
        .await
        .expect("deleting");
    expect_invalid_transition(
        r.purge_tenant(tenant.id).await,
        TenantStatus::Deleting,
        TenantStatus::Deleted,
    );
    r.transition(tenant.id, TenantStatus::Deleted, None)
        .await
        .expect("deleted");
    // Deleted tenants are still readable until purged.
    assert_eq!(
        r.get_tenant(tenant.id).await.expect("get deleted").status,
        TenantStatus::Deleted
    );
    r.purge_tenant(tenant.id).await.expect("purge");
    expect_not_found(r.get_tenant(tenant.id).await, Entity::Tenant);
    expect_not_found(r.get_user(user.id).await, Entity::User);
    expect_not_found(r.get_user(member.id).await, Entity::User);
    assert_eq!(
        r.find_tenant_by_slug(&tenant.slug).await.expect("slug"),
        None
    );
    assert_eq!(
        r.find_tenant_by_domain(&domain).await.expect("domain"),
        None
    );
    assert_eq!(
        r.find_user_by_email(&user.email).await.expect("email"),
        None
    );
    expect_not_found(r.purge_tenant(tenant.id).await, Entity::Tenant);
    // Slug, domain and e-mail are free again.
    let again = NewTenant::new(tenant.slug.clone(), "Again", Isolation::Schema)
        .unwrap()
        .with_domain(Some(domain));
    let mut owner = sample_user(again.id, Role::Owner);
    owner.email = user.email.clone();
    r.create_tenant_with_owner(again, owner)
        .await
        .expect("values free after purge");
}

/// Updates are validated, applied field by field, and reflected in lookups.
pub async fn update_validates_and_applies(r: &dyn TenantRegistry) {
    let domain = format!("old-{}.example.com", random_hex(8));
    let tenant = r
        .create_tenant(sample_tenant(Isolation::Schema).with_domain(Some(domain.clone())))
        .await
        .expect("create");
    let quota = QuotaPolicy {
        max_users: 7,
        ..QuotaPolicy::default()
    };
    let new_domain = format!("New-{}.Example.com", random_hex(8));
    let updated = r
        .update_tenant(
            tenant.id,
            TenantUpdate::default()
                .with_name("  Renamed Corp  ")
                .with_plan(Plan::new("enterprise").unwrap())
                .with_quota(Some(quota.clone()))
                .with_domain(Some(new_domain.clone())),
        )
        .await
        .expect("update");
    assert_eq!(updated.name, "Renamed Corp");
    assert_eq!(updated.plan.as_str(), "enterprise");
    assert_eq!(updated.quota, Some(quota));
    assert_eq!(updated.domain, Some(new_domain.to_ascii_lowercase()));
    assert_eq!(updated.slug, tenant.slug);
    assert_eq!(updated.status, tenant.status);
    assert!(updated.updated_at >= tenant.updated_at);
    assert_eq!(r.get_tenant(tenant.id).await.expect("get"), updated);
    assert_eq!(r.find_tenant_by_domain(&domain).await.expect("old"), None);
    let found = r.find_tenant_by_domain(&new_domain).await.expect("new");
    assert_eq!(found.map(|t| t.id), Some(tenant.id));

    // An empty update changes nothing but the timestamp.
    let same = r
        .update_tenant(tenant.id, TenantUpdate::default())
        .await
        .expect("empty update");
    assert_eq!(same.name, updated.name);
    assert_eq!(same.domain, updated.domain);

    // Clearing the quota and the domain.
    let cleared = r
        .update_tenant(
            tenant.id,
            TenantUpdate::default().with_quota(None).with_domain(None),
        )
        .await
        .expect("clear");
    assert_eq!(cleared.quota, None);
    assert_eq!(cleared.domain, None);
    assert_eq!(
        r.find_tenant_by_domain(&new_domain).await.expect("gone"),
        None
    );

    // A moved placement is kept.
    let placement = Placement {
        server: ServerId::new("eu2").unwrap(),
        database: "tenant_shared_2".into(),
        schema: Some(format!("tenant_{}", tenant.slug)),
    };
    let moved = r
        .update_tenant(
            tenant.id,
            TenantUpdate::default().with_placement(placement.clone()),
        )
        .await
        .expect("move");
    assert_eq!(moved.placement, placement);

    // Invalid updates change nothing.
    let before = r.get_tenant(tenant.id).await.expect("get");
    expect_invalid(
        r.update_tenant(tenant.id, TenantUpdate::default().with_name("   "))
            .await,
        "name",
    );
    expect_invalid(
        r.update_tenant(
            tenant.id,
            TenantUpdate::default().with_name("x".repeat(201)),
        )
        .await,
        "name",
    );
    expect_invalid(
        r.update_tenant(
            tenant.id,
            TenantUpdate::default().with_domain(Some("not a domain".into())),
        )
        .await,
        "domain",
    );
    let bad_quota = QuotaPolicy {
        max_connections: 0,
        ..QuotaPolicy::default()
    };
    expect_invalid(
        r.update_tenant(
            tenant.id,
            TenantUpdate::default().with_quota(Some(bad_quota)),
        )
        .await,
        "max_connections",
    );
    assert_eq!(r.get_tenant(tenant.id).await.expect("get"), before);
    expect_not_found(
        r.update_tenant(TenantId::new(), TenantUpdate::default().with_name("X"))
            .await,
        Entity::Tenant,
    );
}

/// Taking another tenant's domain by update is a conflict on `domain`; keeping one's own
/// domain is not.
pub async fn update_domain_conflict(r: &dyn TenantRegistry) {
    let taken = format!("taken-{}.example.com", random_hex(8));
    r.create_tenant(sample_tenant(Isolation::Shared).with_domain(Some(taken.clone())))
        .await
        .expect("owner of the domain");
    let own = format!("own-{}.example.com", random_hex(8));
    let tenant = r
        .create_tenant(sample_tenant(Isolation::Shared).with_domain(Some(own.clone())))
        .await
        .expect("other");
    expect_conflict(
        r.update_tenant(
            tenant.id,
            TenantUpdate::default().with_domain(Some(taken.to_ascii_uppercase())),
        )
        .await,
        "domain",
    );
    let kept = r.get_tenant(tenant.id).await.expect("get");
    assert_eq!(kept.domain.as_deref(), Some(own.as_str()));
    let found = r.find_tenant_by_domain(&own).await.expect("own");
    assert_eq!(found.map(|t| t.id), Some(tenant.id));
    r.update_tenant(tenant.id, TenantUpdate::default().with_domain(Some(own)))
        .await
        .expect("keeping one's own domain");
}

/// Spoils one field of a new tenant.
type Spoil = Box<dyn Fn(&mut NewTenant) + Send + Sync>;

/// Bad names, domains and regions are refused as `InvalidInput` naming the field, and
/// nothing is created.
pub async fn bad_input_is_refused_with_field(r: &dyn TenantRegistry) {
    let cases: Vec<(&str, Spoil)> = vec![
        ("name", Box::new(|t| t.name = String::new())),
        ("name", Box::new(|t| t.name = "   ".into())),
        ("name", Box::new(|t| t.name = "x".repeat(201))),
        ("name", Box::new(|t| t.name = "bad\u{0}name".into())),
        ("name", Box::new(|t| t.name = "line\nbreak".into())),
        (
            "domain",
            Box::new(|t| t.domain = Some("x'; DROP TABLE tenants; --.com".into())),
        ),
        (
            "domain",
            Box::new(|t| t.domain = Some("bücher.example".into())),
        ),
        ("domain", Box::new(|t| t.domain = Some(String::new()))),
        ("domain", Box::new(|t| t.domain = Some("nodot".into()))),
        (
            "domain",
            Box::new(|t| t.domain = Some(format!("{}.com", "a".repeat(64)))),
        ),
        (
            "domain",
            Box::new(|t| t.domain = Some(format!("{}com", "abcdefghi.".repeat(26)))),
        ),
        ("region", Box::new(|t| t.region = Some(String::new()))),
        ("region", Box::new(|t| t.region = Some("r".repeat(65)))),
        (
            "placement.schema",
            Box::new(|t| {
                t.isolation = Isolation::Schema;
                t.placement.schema = None;
            }),
        ),
    ];
    for (field, spoil) in cases {
        let mut new = sample_tenant(Isolation::Shared);
        spoil(&mut new);
        let slug = new.slug.clone();
        expect_invalid(r.create_tenant(new.clone()).await, field);
        let owner = sample_user(new.id, Role::Owner);
        let email = owner.email.clone();
        expect_invalid(r.create_tenant_with_owner(new, owner).await, field);
        assert_eq!(r.find_tenant_by_slug(&slug).await.expect("slug"), None);
        assert_eq!(r.find_user_by_email(&email).await.expect("email"), None);
    }
    // Users need an existing tenant.
    expect_not_found(
        r.create_user(sample_user(TenantId::new(), Role::Member))
            .await,
        Entity::Tenant,
    );
    let too_long_reason = "r".repeat(1001);
    let tenant = tenant_in(
        r,
        sample_tenant(Isolation::Shared),
        TenantStatus::Provisioning,
    )
    .await;
    expect_invalid(
        r.transition(tenant.id, TenantStatus::Failed, Some(too_long_reason))
            .await,
        "reason",
    );
    assert_eq!(
        r.get_tenant(tenant.id).await.expect("get").status,
        TenantStatus::Provisioning
    );
}

/// Unicode and SQL metacharacters in free-text fields are data: stored and returned as given.
pub async fn unicode_and_sql_metacharacters_are_stored_verbatim(r: &dyn TenantRegistry) {
    for name in [
        "Robert'); DROP TABLE tenants;--",
        "Café Ünïcødé ☃ 東京",
        "\"quoted\" \\ backslash % _ wildcard",
    ] {
        let mut new = sample_tenant(Isolation::Schema);
        new.name = name.into();
        let created = r.create_tenant(new).await.expect("create");
        assert_eq!(created.name, name);
        assert_eq!(r.get_tenant(created.id).await.expect("get").name, name);
        let updated = r
            .update_tenant(
                created.id,
                TenantUpdate::default().with_name(format!("{name}!")),
            )
            .await
            .expect("update");
        assert_eq!(updated.name, format!("{name}!"));
    }
    let tenant = tenant_in(
        r,
        sample_tenant(Isolation::Shared),
        TenantStatus::Provisioning,
    )
    .await;
    let reason = "ERROR: relation \"x\" does not exist; O'Brien ü";
    let failed = r
        .transition(tenant.id, TenantStatus::Failed, Some(reason.into()))
        .await
        .expect("fail");
    assert_eq!(failed.status_reason.as_deref(), Some(reason));
}

/// Lookups by a malformed domain, or one with SQL metacharacters, find nothing.
pub async fn lookups_with_bad_input_find_nothing(r: &dyn TenantRegistry) {
    r.create_tenant(
        sample_tenant(Isolation::Shared)
            .with_domain(Some(format!("real-{}.example.com", random_hex(8)))),
    )
    .await
    .expect("create");
    for domain in [
        "",
        "' OR '1'='1",
        "%",
        "%.example.com",
        "_",
        "localhost:3000",
        "bücher.example",
        &"a".repeat(300),
    ] {
        assert_eq!(
            r.find_tenant_by_domain(domain).await.expect("lookup"),
            None,
            "{domain:?}"
        );
    }
}

/// A tenant's users are listed oldest first and only its own.
pub async fn users_listed_oldest_first(r: &dyn TenantRegistry) {
    let new = sample_tenant(Isolation::Shared);
    let (tenant, owner) = r
        .create_tenant_with_owner(new.clone(), sample_user(new.id, Role::Owner))
        .await
        .expect("create");
    let mut expected: Vec<User> = vec![owner];
    for role in [Role::Admin, Role::Member, Role::Member] {
        let user = r
            .create_user(sample_user(tenant.id, role))
            .await
            .expect("user");
        assert_eq!(user.role, role);
        assert_eq!(user.tenant_id, tenant.id);
        expected.push(user);
    }
    let other = r
        .create_tenant(sample_tenant(Isolation::Shared))
        .await
        .expect("other");
    r.create_user(sample_user(other.id, Role::Member))
        .await
        .expect("other's user");
    let listed = r.list_users(tenant.id).await.expect("list");
    assert_eq!(
        listed.iter().map(|u| u.id).collect::<Vec<UserId>>(),
        expected.iter().map(|u| u.id).collect::<Vec<UserId>>()
    );
    assert_eq!(listed, expected);
    assert_eq!(r.list_users(other.id).await.expect("other's").len(), 1);
    let mut dup = sample_user(tenant.id, Role::Member);
    dup.id = expected[1].id;
    expect_conflict(r.create_user(dup).await, "id");
}

/// Unknown tenants and users are `NotFound` of the right entity.
pub async fn unknown_ids_are_not_found(r: &dyn TenantRegistry) {
    expect_not_found(r.get_tenant(TenantId::new()).await, Entity::Tenant);
    expect_not_found(r.get_user(UserId::new()).await, Entity::User);
    expect_not_found(r.purge_tenant(TenantId::new()).await, Entity::Tenant);
    let listed = r.list_users(TenantId::new()).await;
    assert!(
        matches!(&listed, Ok(users) if users.is_empty())
            || matches!(
                &listed,
                Err(Error::NotFound {
                    entity: Entity::Tenant,
                    ..
                })
            ),
        "{listed:?}"
    );
}

/// The owner of a new shared tenant, created with it.
async fn shared_tenant_owner(r: &dyn TenantRegistry) -> User {
    let new = sample_tenant(Isolation::Shared);
    let owner = sample_user(new.id, Role::Owner);
    let (_, user) = r
        .create_tenant_with_owner(new, owner)
        .await
        .expect("create with owner");
    user
}

/// A hash replacement applies only while the stored hash is the one the caller read, is seen
/// by every lookup, and leaves the rest of the user as it was.
pub async fn password_hash_is_replaced_only_while_unchanged(r: &dyn TenantRegistry) {
    let user = shared_tenant_owner(r).await;
    let fresh = PasswordHash::from_phc(format!(
        "$argon2id$v=19$m=65536,t=3,p=1$c2FsdHNhbHQ${}",
        random_hex(32)
    ));
    let replaced = r
        .replace_password_hash(user.id, &user.password_hash, fresh.clone())
        .await
        .expect("replace");
    assert_eq!(replaced.password_hash, fresh);
    assert_eq!(
        (
            replaced.id,
            replaced.tenant_id,
            &replaced.email,
            replaced.role
        ),
        (user.id, user.tenant_id, &user.email, user.role)
    );
    assert_eq!(r.get_user(user.id).await.expect("get user"), replaced);
    assert_eq!(
        r.find_user_by_email(&user.email).await.expect("by email"),
        Some(replaced.clone())
    );
    // The old hash is stale now: replacing it again changes nothing.
    let stale = PasswordHash::from_phc("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$c3RhbGU");
    expect_conflict(
        r.replace_password_hash(user.id, &user.password_hash, stale)
            .await,
        "password_hash",
    );
    assert_eq!(r.get_user(user.id).await.expect("get user"), replaced);
    expect_not_found(
        r.replace_password_hash(UserId::new(), &fresh, fresh.clone())
            .await,
        Entity::User,
    );
}

/// Of 16 racing replacements of one hash, exactly one wins; the others are conflicts, and the
/// stored hash is the winner's.
pub async fn racing_password_hash_replacements_one_winner(r: &dyn TenantRegistry) {
    let user = shared_tenant_owner(r).await;
    let hashes: Vec<PasswordHash> = (0..16)
        .map(|i| {
            PasswordHash::from_phc(format!(
                "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$cmFjZXI{i:02}"
            ))
        })
        .collect();
    let results = run_concurrently(hashes.len(), |i| {
        r.replace_password_hash(user.id, &user.password_hash, hashes[i].clone())
    });
    let mut winners = Vec::new();
    for (i, result) in results.into_iter().enumerate() {
        match result {
            Ok(updated) => winners.push((i, updated)),
            other => expect_conflict(other, "password_hash"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one replacement wins");
    let (i, updated) = &winners[0];
    assert_eq!(updated.password_hash, hashes[*i]);
    assert_eq!(
        r.get_user(user.id).await.expect("get user").password_hash,
        hashes[*i]
    );
}
