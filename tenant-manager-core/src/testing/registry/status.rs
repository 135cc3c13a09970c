//! Status transitions: the life cycle, racing transitions, recorded reasons, purging.

use crate::domain::{Isolation, NewTenant, Role, TenantId, TenantStatus};
use crate::error::{Entity, Error};
use crate::testing::run_concurrently;
use crate::testing::support::{
    expect_invalid_transition, expect_not_found, random_hex, sample_tenant, sample_user, tenant_in,
};
use crate::traits::TenantRegistry;

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
