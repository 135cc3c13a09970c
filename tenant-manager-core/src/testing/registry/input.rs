//! Bad and hostile input: refused with the field named, stored verbatim, or finding nothing.

use crate::domain::{Isolation, NewTenant, Role, TenantId, TenantStatus, TenantUpdate};
use crate::error::Entity;
use crate::testing::support::{
    expect_invalid, expect_not_found, random_hex, sample_tenant, sample_user, tenant_in,
};
use crate::traits::TenantRegistry;

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

/// Spoils one field of a new tenant.
type Spoil = Box<dyn Fn(&mut NewTenant) + Send + Sync>;
