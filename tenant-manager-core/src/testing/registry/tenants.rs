//! Creating tenants and their owners: what reads back, and which duplicates conflict, also under races.

use crate::domain::{Isolation, NewTenant, NewUser, Plan, Role, TenantId, TenantStatus};
use crate::error::{Entity, Error};
use crate::testing::run_concurrently;
use crate::testing::support::{
    expect_conflict, expect_invalid, expect_not_found, random_hex, sample_tenant, sample_user,
    unique_email, unique_slug,
};
use crate::traits::TenantRegistry;

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

/// A registration whose owner cannot be created (its id is taken) leaves no tenant behind
/// (atomicity), and its slug and domain stay free. An e-mail is unique within a tenant, and
/// the same e-mail may belong to users of other tenants.
pub async fn email_conflict_keeps_nothing(r: &dyn TenantRegistry) {
    let first = sample_tenant(Isolation::Schema);
    let owner = sample_user(first.id, Role::Owner);
    let email = owner.email.clone();
    let (first, owner) = r
        .create_tenant_with_owner(first, owner)
        .await
        .expect("first");
    let domain = format!("d-{}.example.com", random_hex(8));
    let second = sample_tenant(Isolation::Schema).with_domain(Some(domain.clone()));
    let mut dup = sample_user(second.id, Role::Owner);
    dup.id = owner.id;
    expect_conflict(r.create_tenant_with_owner(second.clone(), dup).await, "id");
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
    // The same e-mail in another tenant is another user; twice in one tenant, a conflict.
    let other = r
        .create_tenant(sample_tenant(Isolation::Shared))
        .await
        .expect("other tenant");
    let mut member = sample_user(other.id, Role::Member);
    member.email = email.clone();
    let member = r
        .create_user(member)
        .await
        .expect("same e-mail, other tenant");
    let mut again = sample_user(other.id, Role::Admin);
    again.email = email.clone();
    expect_conflict(r.create_user(again).await, "email");
    let mut again = sample_user(first.id, Role::Member);
    again.email = email.clone();
    expect_conflict(r.create_user(again).await, "email");
    // A new organisation needs an e-mail no user has; the failure keeps nothing.
    let third = sample_tenant(Isolation::Shared);
    let mut taken = sample_user(third.id, Role::Owner);
    taken.email = email.clone();
    expect_conflict(
        r.create_tenant_with_owner(third.clone(), taken).await,
        "email",
    );
    expect_not_found(r.get_tenant(third.id).await, Entity::Tenant);
    let found = r.find_users_by_email(&email).await.expect("by e-mail");
    assert_eq!(
        found
            .iter()
            .map(|u| (u.id, u.tenant_id))
            .collect::<Vec<_>>(),
        vec![(owner.id, first.id), (member.id, other.id)]
    );
    assert_eq!(
        r.find_user_by_email(&email)
            .await
            .expect("oldest")
            .map(|u| u.id),
        Some(owner.id)
    );
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

/// 100 concurrent creations of users with one e-mail in one tenant: exactly one succeeds,
/// the others conflict on `email`; the e-mail stays free in other tenants.
pub async fn concurrent_same_email_one_winner(r: &dyn TenantRegistry) {
    let email = unique_email("race");
    let tenant = r
        .create_tenant(sample_tenant(Isolation::Shared))
        .await
        .expect("tenant");
    let attempts: Vec<NewUser> = (0..100)
        .map(|_| {
            let mut user = sample_user(tenant.id, Role::Member);
            user.email = email.clone();
            user
        })
        .collect();
    let results = run_concurrently(attempts.len(), |i| {
        let user = attempts[i].clone();
        async move { r.create_user(user).await }
    });
    let mut winners = 0;
    for result in results {
        match result {
            Ok(_) => winners += 1,
            Err(e) => {
                assert_eq!(e.field(), Some("email"), "{e:?}");
                assert!(matches!(e, Error::Conflict { .. }), "{e:?}");
            }
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(r.list_users(tenant.id).await.expect("list").len(), 1);
    let other = r
        .create_tenant(sample_tenant(Isolation::Shared))
        .await
        .expect("other tenant");
    let mut member = sample_user(other.id, Role::Member);
    member.email = email.clone();
    r.create_user(member)
        .await
        .expect("the e-mail in another tenant");
    assert_eq!(r.find_users_by_email(&email).await.expect("both").len(), 2);
    // Racing registrations of new organisations by one fresh e-mail: one winner.
    let fresh = unique_email("owner-race");
    let attempts: Vec<(NewTenant, NewUser)> = (0..20)
        .map(|_| {
            let tenant = sample_tenant(Isolation::Shared);
            let mut owner = sample_user(tenant.id, Role::Owner);
            owner.email = fresh.clone();
            (tenant, owner)
        })
        .collect();
    let results = run_concurrently(attempts.len(), |i| {
        let (tenant, owner) = attempts[i].clone();
        async move { r.create_tenant_with_owner(tenant, owner).await }
    });
    let mut owners = 0;
    for (result, (tenant, _)) in results.into_iter().zip(&attempts) {
        match result {
            Ok(_) => owners += 1,
            Err(e) => {
                assert_eq!(e.field(), Some("email"), "{e:?}");
                expect_not_found(r.get_tenant(tenant.id).await, Entity::Tenant);
            }
        }
    }
    assert_eq!(owners, 1);
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
