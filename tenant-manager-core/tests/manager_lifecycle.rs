//! Login, suspend, resume, delete, purge, quotas, listing and backups of `TenantManager`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::{Harness, PASSWORD};
use tenant_manager_core::auth::{HasherConfig, PasswordHasher};
use tenant_manager_core::manager::TenantManager;
use tenant_manager_core::{
    CacheKey, Error, QuotaPolicy, RateLimit, TenantCache, TenantQuery, TenantRegistry,
    TenantStatus, UsageKind,
};

#[tokio::test]
async fn login_succeeds_and_bad_credentials_are_indistinguishable() {
    let h = Harness::new();
    let r = h.register("Acme", "owner@acme.test").await;

    let ok = h
        .manager
        .login(" Owner@ACME.test ", PASSWORD)
        .await
        .unwrap();
    assert_eq!(ok.tenant_id, r.tenant.id);
    assert_eq!(ok.user.id, r.user.id);
    let claims = h
        .manager
        .tokens()
        .verify(ok.token.access_token.expose())
        .unwrap();
    assert_eq!(claims.tid, r.tenant.id);

    let wrong = h
        .manager
        .login("owner@acme.test", "Wrong123!")
        .await
        .unwrap_err();
    let unknown = h
        .manager
        .login("nobody@acme.test", PASSWORD)
        .await
        .unwrap_err();
    let too_long = h
        .manager
        .login("owner@acme.test", &"A1!a".repeat(2_000))
        .await
        .unwrap_err();
    for err in [&wrong, &unknown, &too_long] {
        assert_eq!(err.code(), "unauthenticated");
        assert_eq!(err.to_string(), wrong.to_string());
    }
}

#[tokio::test]
async fn login_upgrades_a_hash_made_with_other_costs() {
    let h = Harness::new();
    let r = h.register("Acme", "owner@acme.test").await;
    let old = r.user.password_hash.clone();
    assert!(old.as_phc().starts_with("$argon2id$v=19$m=256,t=1,p=1$"));
    // The same deployment after its hashing costs were raised.
    let stronger = TenantManager::builder()
        .with_registry(h.registry.clone())
        .with_provisioner(Arc::clone(&h.provisioner))
        .with_quota(h.quota.clone())
        .with_hasher(PasswordHasher::new(HasherConfig::default().with_params(512, 1, 1)).unwrap())
        .with_tokens(support::tokens())
        .build()
        .unwrap();

    let wrong = stronger.login("owner@acme.test", "Wrong123!").await;
    assert_eq!(wrong.unwrap_err().code(), "unauthenticated");
    let stored = h.registry.get_user(r.user.id).await.unwrap();
    assert_eq!(stored.password_hash, old, "a failed login upgrades nothing");

    let login = stronger.login("owner@acme.test", PASSWORD).await.unwrap();
    let upgraded = login.user.password_hash.clone();
    assert!(
        upgraded
            .as_phc()
            .starts_with("$argon2id$v=19$m=512,t=1,p=1$"),
        "{:?}",
        upgraded.as_phc()
    );
    let stored = h.registry.get_user(r.user.id).await.unwrap();
    assert_eq!(stored.password_hash, upgraded);
    let again = stronger.login("owner@acme.test", PASSWORD).await.unwrap();
    assert_eq!(again.user.password_hash, upgraded, "an upgraded hash stays");
    // The old deployment still verifies the upgraded hash.
    assert!(h.manager.login("owner@acme.test", PASSWORD).await.is_ok());
}

#[tokio::test]
async fn login_validates_its_inputs() {
    let h = Harness::new();
    for email in ["", "nope", "a'; --@x.test", "ü@x.test"] {
        let err = h.manager.login(email, PASSWORD).await.unwrap_err();
        assert_eq!(err.field(), Some("email"), "{email:?}: {err}");
    }
    let err = h.manager.login("owner@acme.test", "").await.unwrap_err();
    assert_eq!(err.field(), Some("password"));
}

#[tokio::test]
async fn suspend_resume_delete_and_purge_walk_the_life_cycle() {
    let h = Harness::new();
    let r = h.register("Acme", "owner@acme.test").await;
    let id = r.tenant.id;
    h.cache.put(&r.tenant).await.unwrap();

    let suspended = h.manager.suspend(id, "unpaid invoice").await.unwrap();
    assert_eq!(suspended.status, TenantStatus::Suspended);
    assert_eq!(suspended.status_reason.as_deref(), Some("unpaid invoice"));
    assert_eq!(h.cache.get(&CacheKey::Id(id)).await.unwrap(), None);
    assert_eq!(h.pools.closed(), vec![id]);
    let err = h.login_refusal("owner@acme.test").await;
    assert!(
        matches!(err, Error::Suspended { tenant } if tenant == id),
        "{err:?}"
    );
    // Suspending again is harmless and closes the pool again.
    assert_eq!(
        h.manager.suspend(id, "").await.unwrap().status,
        TenantStatus::Suspended
    );

    h.cache.put(&suspended).await.unwrap();
    let resumed = h.manager.resume(id).await.unwrap();
    assert_eq!(resumed.status, TenantStatus::Active);
    assert_eq!(h.cache.get(&CacheKey::Id(id)).await.unwrap(), None);
    assert!(h.manager.login("owner@acme.test", PASSWORD).await.is_ok());

    let err = h.manager.purge(id).await.unwrap_err();
    assert!(matches!(err, Error::InvalidTransition { .. }), "{err:?}");

    let deleted = h.manager.delete(id).await.unwrap();
    assert_eq!(deleted.status, TenantStatus::Deleted);
    assert!(!h.provisioner.is_provisioned(&deleted).await.unwrap());
    assert_eq!(h.pools.closed().last(), Some(&id));
    assert_eq!(
        h.manager.get(id).await.unwrap().status,
        TenantStatus::Deleted
    );
    h.assert_login_not_ready("owner@acme.test", TenantStatus::Deleted)
        .await;
    // Deleting again returns the deleted tenant.
    assert_eq!(
        h.manager.delete(id).await.unwrap().status,
        TenantStatus::Deleted
    );

    h.manager.purge(id).await.unwrap();
    assert!(matches!(
        h.manager.get(id).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(h.manager.usage(id, UsageKind::Users).await.unwrap(), 0);
    // The e-mail is free again.
    let again = h.register("Acme", "owner@acme.test").await;
    assert_eq!(again.tenant.status, TenantStatus::Active);
}

#[tokio::test]
async fn life_cycle_calls_refuse_bad_input_and_unknown_tenants() {
    let h = Harness::new();
    let r = h.register("Acme", "owner@acme.test").await;
    for reason in ["bad\u{0}reason", &"r".repeat(501)] {
        let err = h.manager.suspend(r.tenant.id, reason).await.unwrap_err();
        assert_eq!(err.field(), Some("reason"));
    }
    let unknown = tenant_manager_core::TenantId::new();
    for err in [
        h.manager.suspend(unknown, "x").await.unwrap_err(),
        h.manager.resume(unknown).await.unwrap_err(),
        h.manager.delete(unknown).await.unwrap_err(),
        h.manager.purge(unknown).await.unwrap_err(),
        h.manager.get(unknown).await.unwrap_err(),
    ] {
        assert_eq!(err.code(), "tenant_not_found", "{err}");
    }
    // Resuming a tenant that is not suspended or active is an illegal transition.
    h.manager.delete(r.tenant.id).await.unwrap();
    let err = h.manager.resume(r.tenant.id).await.unwrap_err();
    assert!(matches!(err, Error::InvalidTransition { .. }), "{err:?}");
}

#[tokio::test]
async fn quota_overrides_apply_and_are_validated() {
    let h = Harness::new();
    let r = h.register("Acme", "owner@acme.test").await;
    let plan_policy = h.manager.effective_quota(&r.tenant);
    assert_eq!(plan_policy, h.manager.plans().policy(&r.tenant.plan));

    let custom = QuotaPolicy {
        rate: RateLimit::new(5, Duration::from_secs(1)).unwrap(),
        max_users: 3,
        ..QuotaPolicy::default()
    };
    h.cache.put(&r.tenant).await.unwrap();
    let updated = h
        .manager
        .update_quota(r.tenant.id, Some(custom.clone()))
        .await
        .unwrap();
    assert_eq!(h.manager.effective_quota(&updated), custom);
    assert_eq!(h.cache.get(&CacheKey::Id(r.tenant.id)).await.unwrap(), None);

    let cleared = h.manager.update_quota(r.tenant.id, None).await.unwrap();
    assert_eq!(h.manager.effective_quota(&cleared), plan_policy);

    let bad = QuotaPolicy {
        max_connections: 0,
        ..QuotaPolicy::default()
    };
    let err = h
        .manager
        .update_quota(r.tenant.id, Some(bad))
        .await
        .unwrap_err();
    assert_eq!(err.field(), Some("max_connections"));
}

#[tokio::test]
async fn listing_pages_through_every_tenant() {
    let h = Harness::new();
    for i in 0..5 {
        h.register(&format!("Org {i}"), &format!("o{i}@acme.test"))
            .await;
    }
    let first = h
        .manager
        .list(&TenantQuery::default().with_limit(3))
        .await
        .unwrap();
    assert_eq!(first.items.len(), 3);
    let next = first.next.expect("a second page");
    let second = h
        .manager
        .list(&TenantQuery::default().with_limit(3).with_after(Some(next)))
        .await
        .unwrap();
    assert_eq!(second.items.len(), 2);
    assert_eq!(second.next, None);
    let mut ids: Vec<_> = first
        .items
        .iter()
        .chain(&second.items)
        .map(|t| t.id)
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 5);

    let err = h
        .manager
        .list(&TenantQuery::default().with_limit(0))
        .await
        .unwrap_err();
    assert_eq!(err.field(), Some("limit"));
}

#[tokio::test]
async fn backup_all_covers_tenants_with_data_and_reports_progress() {
    let h = Harness::new();
    let a = h.register("Alpha", "a@acme.test").await;
    let b = h.register("Beta", "b@acme.test").await;
    let c = h.register("Gamma", "c@acme.test").await;
    h.manager.suspend(b.tenant.id, "").await.unwrap();
    h.manager.delete(c.tenant.id).await.unwrap();

    let mut seen = Vec::new();
    let summary = h
        .manager
        .backup_all(2, |p| {
            seen.push((p.completed, p.total, p.tenant, p.succeeded))
        })
        .await
        .unwrap();
    assert!(summary.failures.is_empty(), "{:?}", summary.failures);
    let mut backed_up: Vec<_> = summary.backups.iter().map(|r| r.tenant_id).collect();
    backed_up.sort();
    let mut expected = vec![a.tenant.id, b.tenant.id];
    expected.sort();
    assert_eq!(backed_up, expected);
    assert_eq!(seen.len(), 2);
    assert_eq!(seen.last().map(|s| (s.0, s.1)), Some((2, 2)));
    assert!(seen.iter().all(|s| s.3));
    let listed = tenant_manager_core::Backup::list(h.backup.as_ref(), a.tenant.id)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);

    for concurrency in [0, 65] {
        let err = h.manager.backup_all(concurrency, |_| {}).await.unwrap_err();
        assert_eq!(err.field(), Some("concurrency"));
    }
    let without_backup = TenantManager::builder()
        .with_registry(h.registry.clone())
        .with_provisioner(h.provisioner.clone())
        .with_quota(h.quota.clone())
        .with_tokens(support::tokens())
        .with_hasher(support::cheap_hasher())
        .build()
        .unwrap();
    let err = without_backup.backup_all(1, |_| {}).await.unwrap_err();
    assert_eq!(err.field(), Some("backup"));
}

#[tokio::test]
async fn manager_debug_output_shows_no_secret() {
    let h = Harness::new();
    let shown = format!("{:?}", h.manager);
    assert!(!shown.contains(support::JWT_SECRET), "{shown}");
    assert!(shown.contains("TenantManager"));
}

#[tokio::test]
async fn one_backup_and_quota_changes_refuse_tenants_without_data_by_status() {
    let h = Harness::new();
    let live = h.register("Alpha", "a@acme.test").await;
    let gone = h.register("Beta", "b@acme.test").await;
    h.manager.delete(gone.tenant.id).await.unwrap();

    let record = h.manager.backup_tenant(live.tenant.id).await.unwrap();
    assert_eq!(record.tenant_id, live.tenant.id);
    let err = h.manager.backup_tenant(gone.tenant.id).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    assert_eq!(err.field(), Some("status"));
    let listed = tenant_manager_core::Backup::list(h.backup.as_ref(), gone.tenant.id)
        .await
        .unwrap();
    assert!(listed.is_empty());
    let err = h
        .manager
        .update_quota(gone.tenant.id, None)
        .await
        .unwrap_err();
    assert_eq!(err.field(), Some("status"));

    h.manager.purge(gone.tenant.id).await.unwrap();
    let unknown = tenant_manager_core::TenantId::new();
    for id in [gone.tenant.id, unknown] {
        let err = h.manager.backup_tenant(id).await.unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
        let err = h.manager.update_quota(id, None).await.unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    }
}

#[tokio::test]
async fn prune_backups_keeps_what_the_retention_policy_keeps_and_deletes_the_rest() {
    use tenant_manager_core::Backup as _;
    use tenant_manager_core::lifecycle::retention::RetentionPolicy;

    let h = Harness::new();
    let a = h.register("Alpha", "a@acme.test").await;
    let mut taken = Vec::new();
    for _ in 0..3 {
        taken.push(h.manager.backup_tenant(a.tenant.id).await.unwrap());
    }
    // All taken today: one day kept means the newest alone.
    let policy = RetentionPolicy::new(1, 0).unwrap();
    // A dry run names what would go and deletes nothing.
    let dry = h
        .manager
        .prune_backups(a.tenant.id, policy, true)
        .await
        .unwrap();
    assert_eq!((dry.kept.len(), dry.deleted.len()), (1, 2), "{dry:?}");
    assert_eq!(h.backup.list(a.tenant.id).await.unwrap().len(), 3);
    let outcome = h
        .manager
        .prune_backups(a.tenant.id, policy, false)
        .await
        .unwrap();
    assert_eq!(
        outcome.deleted.iter().map(|r| r.id).collect::<Vec<_>>(),
        dry.deleted.iter().map(|r| r.id).collect::<Vec<_>>()
    );
    let pruned = outcome.deleted;
    let listed = h.backup.list(a.tenant.id).await.unwrap();
    assert_eq!(pruned.len(), 2, "{pruned:?}");
    assert_eq!(listed.len(), 1);
    let newest = taken.iter().max_by_key(|r| r.created_at).unwrap();
    assert_eq!(listed[0].id, newest.id);
    assert!(pruned.iter().all(|r| r.id != newest.id));
    // Their artifacts are gone from the store.
    let stored = h
        .backup
        .store()
        .list(&format!("{}/", a.tenant.id))
        .await
        .unwrap();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].key, newest.key);
    // A second run prunes nothing.
    assert!(
        h.manager
            .prune_backups(a.tenant.id, policy, false)
            .await
            .unwrap()
            .deleted
            .is_empty()
    );
    // The kept backup restores with the rows recorded when it was taken.
    let verified = h.manager.verify_latest_backups(None).await.unwrap();
    assert_eq!((verified.checked, verified.failed), (1, 0), "{verified:?}");
    assert!(newest.table_rows.is_some());
}
