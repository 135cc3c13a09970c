//! `TenantManager::register_organization` over the in-memory adapters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use support::{Failure, FlakyProvisioner, Harness, PASSWORD};
use tenant_manager_core::manager::{ManagerConfig, Registration};
use tenant_manager_core::memory::{InMemoryProvisioner, InMemoryTenantData};
use tenant_manager_core::{
    Error, Isolation, Provisioner, ProvisionerCapabilities, Role, TenantQuery, TenantRegistry,
    TenantStatus, UsageKind,
};

#[tokio::test]
async fn registration_creates_an_active_tenant_with_its_owner_and_a_token() {
    let h = Harness::new();
    let r = h.register("Acme Corp", "Owner@Acme.test").await;

    assert_eq!(r.tenant.status, TenantStatus::Active);
    assert_eq!(r.tenant.slug.as_str(), "acme_corp");
    assert_eq!(r.tenant.name, "Acme Corp");
    assert_eq!(r.tenant.isolation, Isolation::Schema);
    assert_eq!(r.tenant.placement.schema.as_deref(), Some("tm_t_acme_corp"));
    assert_eq!(r.tenant.placement.database, "tm_shared");
    assert!(h.provisioner.is_provisioned(&r.tenant).await.unwrap());

    assert_eq!(r.user.role, Role::Owner);
    assert_eq!(r.user.tenant_id, r.tenant.id);
    assert_eq!(r.user.email.as_str(), "owner@acme.test");
    assert!(r.user.password_hash.as_phc().starts_with("$argon2id$"));
    assert!(!r.user.password_hash.as_phc().contains(PASSWORD));

    let claims = h
        .manager
        .tokens()
        .verify(r.token.access_token.expose())
        .unwrap();
    assert_eq!(
        (claims.sub, claims.tid, claims.role),
        (r.user.id, r.tenant.id, Role::Owner)
    );
    assert_eq!(r.token.token_type, "Bearer");

    assert_eq!(
        h.manager.get(r.tenant.id).await.unwrap().status,
        TenantStatus::Active
    );
    assert_eq!(
        h.manager
            .usage(r.tenant.id, UsageKind::Users)
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn chosen_slug_isolation_and_unicode_names_are_honoured() {
    let h = Harness::new();
    let r = h
        .manager
        .register_organization(
            Registration::new("Ünïcødé ☃ GmbH", "a@b.test", PASSWORD)
                .with_slug("globex")
                .with_isolation("database")
                .with_plan("pro"),
        )
        .await
        .unwrap();
    assert_eq!(r.tenant.slug.as_str(), "globex");
    assert_eq!(r.tenant.name, "Ünïcødé ☃ GmbH");
    assert_eq!(r.tenant.isolation, Isolation::Database);
    assert_eq!(r.tenant.placement.database, "tm_t_globex");
    assert_eq!(r.tenant.plan.as_str(), "pro");

    let derived = h.register("Ünïcødé ☃", "c@d.test").await;
    assert_eq!(derived.tenant.status, TenantStatus::Active);
}

/// (field, bad value) pairs; every one must be refused naming the field.
fn bad_inputs() -> Vec<(&'static str, Registration)> {
    let ok = || Registration::new("Acme", "owner@acme.test", PASSWORD);
    let mut cases = Vec::new();
    for name in ["", "   ", "a\u{0}b", "tab\tname", &"x".repeat(201)] {
        cases.push((
            "organization_name",
            Registration::new(name, "owner@acme.test", PASSWORD),
        ));
    }
    for email in [
        "",
        "not-an-email",
        "a@b",
        "@acme.test",
        "ü@acme.test",
        "a b@acme.test",
        "x'; DROP TABLE users;--@acme.test",
        "owner@acme..test",
        &format!("{}@acme.test", "x".repeat(250)),
    ] {
        cases.push(("admin_email", Registration::new("Acme", email, PASSWORD)));
    }
    for password in [
        "",
        "Ab1!",
        "alllowercase",
        "ALLUPPER123",
        &format!("Aa1!{}", "x".repeat(125)),
        "Abc123!\u{7}x",
        "owner@acme.test",
    ] {
        cases.push((
            "admin_password",
            Registration::new("Acme", "owner@acme.test", password),
        ));
    }
    for slug in [
        "",
        "ab",
        "Acme",
        "1acme",
        "acme-corp",
        "a\"; drop table x; --",
        "postgres",
        "template0",
        "pg_catalog",
        "ümlaut",
        &"x".repeat(49),
    ] {
        cases.push(("slug", ok().with_slug(slug)));
    }
    for isolation in [
        "",
        "Database",
        "cluster",
        "schema; DROP SCHEMA public",
        "ßchema",
    ] {
        cases.push(("isolation", ok().with_isolation(isolation)));
    }
    for plan in ["", "Pro Plan", "pro'; --", "ünlimited", &"p".repeat(33)] {
        cases.push(("plan", ok().with_plan(plan)));
    }
    cases
}

#[tokio::test]
async fn every_bad_field_is_refused_by_name_and_nothing_is_created() {
    let h = Harness::new();
    for (field, registration) in bad_inputs() {
        let shown = format!("{registration:?}");
        match h.manager.register_organization(registration).await {
            Err(Error::InvalidInput { field: got, .. }) => assert_eq!(got, field, "{shown}"),
            other => panic!("{shown}: expected InvalidInput on {field}, got {other:?}"),
        }
    }
    let page = h.manager.list(&TenantQuery::default()).await.unwrap();
    assert!(page.items.is_empty(), "{:?}", page.items);
}

#[tokio::test]
async fn an_isolation_the_provisioner_lacks_is_refused() {
    fn schema_only(data: Arc<InMemoryTenantData>) -> Arc<dyn Provisioner> {
        let mut caps = ProvisionerCapabilities::ALL;
        caps.database = false;
        caps.shared = false;
        Arc::new(InMemoryProvisioner::new(data).with_capabilities(caps))
    }
    let h = Harness::with(ManagerConfig::default(), Some(schema_only));
    let err = h
        .manager
        .register_organization(
            Registration::new("Acme", "owner@acme.test", PASSWORD).with_isolation("database"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.field(), Some("isolation"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_concurrent_registrations_with_one_email_give_exactly_one_success() {
    let h = Arc::new(Harness::new());
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let h = Arc::clone(&h);
            tokio::spawn(async move {
                h.manager
                    .register_organization(Registration::new(
                        format!("Org {i}"),
                        "same@acme.test",
                        PASSWORD,
                    ))
                    .await
            })
        })
        .collect();
    let mut successes = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => successes += 1,
            Err(Error::Conflict { field, .. }) => assert_eq!(field, "email"),
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    assert_eq!(successes, 1);
    let page = h
        .manager
        .list(&TenantQuery::default().with_limit(500))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
}

#[tokio::test]
async fn a_taken_derived_slug_gets_a_suffix_but_a_chosen_one_conflicts() {
    let h = Harness::new();
    let first = h.register("Acme", "one@acme.test").await;
    let second = h.register("Acme", "two@acme.test").await;
    assert_eq!(first.tenant.slug.as_str(), "acme");
    assert!(
        second.tenant.slug.as_str().starts_with("acme_"),
        "{}",
        second.tenant.slug
    );
    assert_eq!(second.tenant.status, TenantStatus::Active);

    let err = h
        .manager
        .register_organization(
            Registration::new("Other", "three@acme.test", PASSWORD).with_slug("acme"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { field, .. } if field == "slug"),
        "{err:?}"
    );
    // The refused registration created nothing.
    assert!(h.manager.login("three@acme.test", PASSWORD).await.is_err());
}

#[tokio::test]
async fn a_failed_inline_provisioning_is_recorded_and_can_be_retried() {
    fn fails_once(data: Arc<InMemoryTenantData>) -> Arc<dyn Provisioner> {
        Arc::new(FlakyProvisioner::new(
            Arc::new(InMemoryProvisioner::new(data)),
            Failure::Transient(1),
        ))
    }
    let h = Harness::with(ManagerConfig::default(), Some(fails_once));
    let r = h.register("Acme", "owner@acme.test").await;
    assert_eq!(r.tenant.status, TenantStatus::Failed);
    let reason = r.tenant.status_reason.clone().unwrap_or_default();
    assert!(reason.contains("unavailable"), "{reason}");

    let retried = h.manager.retry_provisioning(r.tenant.id).await.unwrap();
    assert_eq!(retried.status, TenantStatus::Active);
    assert_eq!(retried.status_reason, None);
    // Retrying an active tenant changes nothing.
    let again = h.manager.retry_provisioning(r.tenant.id).await.unwrap();
    assert_eq!(again.status, TenantStatus::Active);
}

#[tokio::test]
async fn async_registration_queues_a_provision_job() {
    let h = Harness::queued();
    let r = h.register("Acme", "owner@acme.test").await;
    assert_eq!(r.tenant.status, TenantStatus::Provisioning);
    assert!(!h.provisioner.is_provisioned(&r.tenant).await.unwrap());
    let stats = tenant_manager_core::JobQueue::stats(h.jobs.as_ref())
        .await
        .unwrap();
    assert_eq!(stats.ready, 1);
    // The owner can already authenticate a token, but not log in until the tenant is active.
    assert!(
        h.manager
            .tokens()
            .verify(r.token.access_token.expose())
            .is_ok()
    );
    h.assert_login_not_ready("owner@acme.test", TenantStatus::Provisioning)
        .await;
}

#[tokio::test]
async fn the_builder_refuses_missing_parts_and_contradictions() {
    use tenant_manager_core::manager::TenantManager;
    let err = TenantManager::builder().build().unwrap_err();
    assert_eq!(err.field(), Some("registry"));

    let h = Harness::new();
    let err = TenantManager::builder()
        .with_registry(h.registry.clone())
        .with_provisioner(h.provisioner.clone())
        .with_quota(h.quota.clone())
        .with_tokens(support::tokens())
        .with_config(ManagerConfig::default().with_async_provisioning(true))
        .build()
        .unwrap_err();
    assert_eq!(err.field(), Some("job_queue"));

    let err = TenantManager::builder()
        .with_registry(h.registry.clone())
        .with_provisioner(h.provisioner.clone())
        .with_quota(h.quota.clone())
        .with_tokens(support::tokens())
        .with_config(ManagerConfig::default().with_shared_database("shared; drop"))
        .build()
        .unwrap_err();
    assert_eq!(err.field(), Some("shared_database"));
}

#[tokio::test]
async fn a_caller_that_gives_up_mid_provisioning_does_not_leave_the_tenant_provisioning() {
    let data = Arc::new(InMemoryTenantData::new());
    let slow = Arc::new(FlakyProvisioner::new(
        Arc::new(InMemoryProvisioner::new(Arc::clone(&data))),
        Failure::Slow(std::time::Duration::from_millis(200)),
    ));
    let h = Harness::assemble(ManagerConfig::default(), data, slow.clone());

    // The caller is dropped while the provisioner runs, as a request is when its client
    // disconnects or its timeout fires.
    let registration = h.manager.register_organization(Registration::new(
        "Gone Corp",
        "owner@gone.test",
        PASSWORD,
    ));
    tokio::select! {
        outcome = registration => panic!("finished before the provisioner was called: {outcome:?}"),
        () = slow.called() => {}
    }

    let slug = tenant_manager_core::TenantSlug::new("gone_corp").unwrap();
    let mut status = TenantStatus::Provisioning;
    for _ in 0..500 {
        let tenant = h.registry.find_tenant_by_slug(&slug).await.unwrap();
        status = tenant.expect("the tenant was created").status;
        if status != TenantStatus::Provisioning {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(status, TenantStatus::Active, "the run finished on its own");
    assert_eq!(slow.calls(), 1);
}

#[tokio::test]
async fn a_failed_registration_gives_its_email_back_to_its_owner_only() {
    fn fails_twice(data: Arc<InMemoryTenantData>) -> Arc<dyn Provisioner> {
        Arc::new(FlakyProvisioner::new(
            Arc::new(InMemoryProvisioner::new(data)),
            Failure::Transient(2),
        ))
    }
    let h = Harness::with(ManagerConfig::default(), Some(fails_twice));
    let first = h.register("Acme", "owner@acme.test").await;
    assert_eq!(first.tenant.status, TenantStatus::Failed);

    // A stranger with another password gets the conflict of any taken e-mail.
    let stranger = Registration::new("Acme", "owner@acme.test", "Str4nger!pass");
    let err = h.manager.register_organization(stranger).await.unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { field, .. } if field == "email"),
        "{err:?}"
    );

    // The owner's retries provision the same tenant: failed once more, then active.
    let again = h.register("Acme", "owner@acme.test").await;
    assert_eq!(
        (again.tenant.id, again.tenant.status),
        (first.tenant.id, TenantStatus::Failed)
    );
    let done = h.register("Acme", "owner@acme.test").await;
    assert_eq!(
        (done.tenant.id, done.tenant.status),
        (first.tenant.id, TenantStatus::Active)
    );
    assert_eq!(done.user.id, first.user.id);
    assert_eq!(
        h.registry.list_users(first.tenant.id).await.unwrap().len(),
        1
    );
    assert!(h.manager.login("owner@acme.test", PASSWORD).await.is_ok());

    // Once active, the e-mail is taken for good, also for its owner's password.
    let err = h
        .manager
        .register_organization(Registration::new("Acme", "owner@acme.test", PASSWORD))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { field, .. } if field == "email"),
        "{err:?}"
    );
    let count = h.registry.count_tenants(None).await.unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn a_failed_registration_retried_with_another_slug_is_replaced() {
    fn fails_once(data: Arc<InMemoryTenantData>) -> Arc<dyn Provisioner> {
        Arc::new(FlakyProvisioner::new(
            Arc::new(InMemoryProvisioner::new(data)),
            Failure::Transient(1),
        ))
    }
    let h = Harness::with(ManagerConfig::default(), Some(fails_once));
    let first = h.register("Acme", "owner@acme.test").await;
    assert_eq!(first.tenant.status, TenantStatus::Failed);
    let other = Registration::new("Acme", "owner@acme.test", PASSWORD).with_slug("acme_two");
    let second = h.manager.register_organization(other).await.unwrap();
    assert_ne!(second.tenant.id, first.tenant.id);
    assert_eq!(second.tenant.status, TenantStatus::Active);
    assert_eq!(second.tenant.slug.as_str(), "acme_two");
    let gone = h.registry.get_tenant(first.tenant.id).await.unwrap_err();
    assert!(matches!(gone, Error::NotFound { .. }), "{gone:?}");
    assert_eq!(h.registry.count_tenants(None).await.unwrap(), 1);
    assert_eq!(
        h.manager
            .usage(second.tenant.id, UsageKind::Users)
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn an_interrupted_replacement_is_finished_by_the_owners_next_registration() {
    fn fails_twice(data: Arc<InMemoryTenantData>) -> Arc<dyn Provisioner> {
        Arc::new(FlakyProvisioner::new(
            Arc::new(InMemoryProvisioner::new(data)),
            Failure::Transient(2),
        ))
    }
    let h = Harness::with(ManagerConfig::default(), Some(fails_twice));
    let replaced = h.register("Acme", "owner@acme.test").await;
    let deleted = h.register("Beta", "owner@beta.test").await;
    assert_eq!(deleted.tenant.status, TenantStatus::Failed);
    // One replacement stopped after its first step; one tenant deleted by an operator.
    let marker = Some("replaced by a new registration of its owner".to_owned());
    h.registry
        .transition(replaced.tenant.id, TenantStatus::Deleting, marker)
        .await
        .unwrap();
    h.registry
        .transition(deleted.tenant.id, TenantStatus::Deleting, None)
        .await
        .unwrap();

    let again = Registration::new("Acme", "owner@acme.test", PASSWORD).with_slug("acme_new");
    let new = h.manager.register_organization(again).await.unwrap();
    assert_eq!(new.tenant.status, TenantStatus::Active);
    let gone = h.registry.get_tenant(replaced.tenant.id).await.unwrap_err();
    assert!(matches!(gone, Error::NotFound { .. }), "{gone:?}");

    // A tenant an operator is deleting keeps its e-mail until it is purged.
    let err = h
        .manager
        .register_organization(Registration::new("Beta", "owner@beta.test", PASSWORD))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { field, .. } if field == "email"),
        "{err:?}"
    );
}
