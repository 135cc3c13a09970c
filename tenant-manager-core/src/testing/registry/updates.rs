//! Updating a tenant: validation, what changes, and domain conflicts.

use crate::domain::{Isolation, Placement, Plan, QuotaPolicy, ServerId, TenantId, TenantUpdate};
use crate::error::Entity;
use crate::testing::support::{
    expect_conflict, expect_invalid, expect_not_found, random_hex, sample_tenant,
};
use crate::traits::TenantRegistry;

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
