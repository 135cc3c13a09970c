//! Users of a tenant: roles, removal, the last owner; invitations: seats, acceptance, expiry.

use time::{Duration, OffsetDateTime};

use crate::domain::{
    Email, InvitationId, Isolation, NewInvitation, OpaqueToken, PasswordHash, Role, Tenant,
    TenantId, User, UserId,
};
use crate::error::{Entity, Error};
use crate::testing::run_concurrently;
use crate::testing::support::{
    expect_conflict, expect_not_found, sample_tenant, sample_user, unique_email,
};
use crate::traits::TenantRegistry;

/// A new tenant and its owner.
async fn tenant_with_owner(r: &dyn TenantRegistry) -> (Tenant, User) {
    let new = sample_tenant(Isolation::Shared);
    r.create_tenant_with_owner(new.clone(), sample_user(new.id, Role::Owner))
        .await
        .expect("tenant with owner")
}

/// An invitation of `email` to `tenant`, expiring in `ttl`, and its token.
fn invitation(
    tenant: TenantId,
    by: Option<UserId>,
    email: Email,
    role: Role,
    ttl: Duration,
) -> (NewInvitation, OpaqueToken) {
    let id = InvitationId::new();
    let token = OpaqueToken::generate(*id.as_uuid());
    let new = NewInvitation::new(
        id,
        tenant,
        email,
        role,
        by,
        token.digest(),
        OffsetDateTime::now_utc() + ttl,
    );
    (new, token)
}

fn hash() -> PasswordHash {
    PasswordHash::from_phc("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aW52aXRlZA")
}

fn expect_quota<T: std::fmt::Debug>(result: crate::Result<T>) {
    match result {
        Err(Error::QuotaExceeded {
            quota, retry_after, ..
        }) => {
            assert_eq!(quota, "users");
            assert!(retry_after.is_zero(), "only a plan change helps");
        }
        other => panic!("expected the users quota, got {other:?}"),
    }
}

/// Roles change within the tenant; the last owner can be neither demoted nor removed; a user
/// of another tenant is not found; a removed user is gone from every lookup.
pub async fn roles_change_and_the_last_owner_stays(r: &dyn TenantRegistry) {
    let (tenant, owner) = tenant_with_owner(r).await;
    let admin = r
        .create_user(sample_user(tenant.id, Role::Admin))
        .await
        .expect("admin");
    expect_conflict(
        r.update_user_role(tenant.id, owner.id, Role::Admin).await,
        "role",
    );
    expect_conflict(r.delete_user(tenant.id, owner.id).await, "role");
    let promoted = r
        .update_user_role(tenant.id, admin.id, Role::Owner)
        .await
        .expect("promote");
    assert_eq!(promoted.role, Role::Owner);
    assert_eq!(r.get_user(admin.id).await.expect("get").role, Role::Owner);
    let demoted = r
        .update_user_role(tenant.id, owner.id, Role::Member)
        .await
        .expect("another owner exists");
    assert_eq!(demoted.role, Role::Member);
    expect_conflict(
        r.update_user_role(tenant.id, admin.id, Role::Member).await,
        "role",
    );
    let (other, other_owner) = tenant_with_owner(r).await;
    expect_not_found(
        r.update_user_role(tenant.id, other_owner.id, Role::Member)
            .await,
        Entity::User,
    );
    expect_not_found(r.delete_user(tenant.id, other_owner.id).await, Entity::User);
    expect_not_found(r.delete_user(other.id, owner.id).await, Entity::User);
    let removed = r.delete_user(tenant.id, owner.id).await.expect("remove");
    assert_eq!(removed.id, owner.id);
    expect_not_found(r.get_user(owner.id).await, Entity::User);
    assert!(
        r.find_users_by_email(&owner.email)
            .await
            .expect("by e-mail")
            .is_empty()
    );
    assert_eq!(
        r.list_users(tenant.id)
            .await
            .expect("list")
            .iter()
            .map(|u| u.id)
            .collect::<Vec<_>>(),
        vec![admin.id]
    );
    let mut back = sample_user(tenant.id, Role::Member);
    back.email = owner.email.clone();
    r.create_user(back).await.expect("the e-mail is free again");
    expect_not_found(r.delete_user(tenant.id, UserId::new()).await, Entity::User);
}

/// Two owners demoting and removing each other at once: one owner always stays.
pub async fn racing_owner_changes_keep_an_owner(r: &dyn TenantRegistry) {
    let (tenant, first) = tenant_with_owner(r).await;
    let second = r
        .create_user(sample_user(tenant.id, Role::Owner))
        .await
        .expect("second owner");
    let owners = [first.id, second.id];
    let results = run_concurrently(16, |i| async move {
        let user = owners[i % 2];
        if i % 4 < 2 {
            r.update_user_role(tenant.id, user, Role::Member)
                .await
                .map(|_| ())
        } else {
            r.delete_user(tenant.id, user).await.map(|_| ())
        }
    });
    for result in results {
        if let Err(e) = result {
            assert!(
                matches!(&e, Error::Conflict { .. } | Error::NotFound { .. }),
                "{e:?}"
            );
        }
    }
    let users = r.list_users(tenant.id).await.expect("list");
    assert_eq!(
        users.iter().filter(|u| u.role == Role::Owner).count(),
        1,
        "{users:?}"
    );
}

/// Invitations take seats with the users: beyond the limit the users quota refuses; a revoked
/// invitation frees its seat; an e-mail already in the tenant, or already invited, conflicts.
pub async fn invitations_take_seats_up_to_the_limit(r: &dyn TenantRegistry) {
    let (tenant, owner) = tenant_with_owner(r).await;
    let invite = |email: Email| {
        invitation(
            tenant.id,
            Some(owner.id),
            email,
            Role::Member,
            Duration::days(1),
        )
        .0
    };
    let a = r
        .create_invitation(invite(unique_email("a")), 3)
        .await
        .expect("a");
    let b = r
        .create_invitation(invite(unique_email("b")), 3)
        .await
        .expect("b");
    assert_eq!(r.count_seats(tenant.id).await.expect("seats"), 3);
    expect_quota(r.create_invitation(invite(unique_email("c")), 3).await);
    expect_conflict(
        r.create_invitation(invite(owner.email.clone()), 10).await,
        "email",
    );
    expect_conflict(
        r.create_invitation(invite(a.email.clone()), 10).await,
        "email",
    );
    let listed: Vec<InvitationId> = r
        .list_invitations(tenant.id)
        .await
        .expect("list")
        .iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(listed, vec![a.id, b.id]);
    let revoked = r.revoke_invitation(tenant.id, a.id).await.expect("revoke");
    assert!(revoked.revoked_at.is_some());
    expect_not_found(
        r.revoke_invitation(tenant.id, a.id).await,
        Entity::Invitation,
    );
    assert_eq!(r.count_seats(tenant.id).await.expect("seats"), 2);
    let c = r
        .create_invitation(invite(unique_email("c")), 3)
        .await
        .expect("a seat is free");
    assert_eq!(r.get_invitation(c.id).await.expect("get"), c);
    let (other, _) = tenant_with_owner(r).await;
    expect_not_found(
        r.revoke_invitation(other.id, b.id).await,
        Entity::Invitation,
    );
    assert!(
        r.list_invitations(other.id)
            .await
            .expect("other")
            .is_empty()
    );
    expect_not_found(
        r.get_invitation(InvitationId::new()).await,
        Entity::Invitation,
    );
}

/// 24 invitations racing for 4 free seats: exactly 4 are recorded.
pub async fn racing_invitations_never_exceed_the_seats(r: &dyn TenantRegistry) {
    let (tenant, owner) = tenant_with_owner(r).await;
    let invitations: Vec<NewInvitation> = (0..24)
        .map(|_| {
            invitation(
                tenant.id,
                Some(owner.id),
                unique_email("racer"),
                Role::Member,
                Duration::days(1),
            )
            .0
        })
        .collect();
    let results = run_concurrently(invitations.len(), |i| {
        r.create_invitation(invitations[i].clone(), 5)
    });
    let mut recorded = 0;
    for result in results {
        match result {
            Ok(_) => recorded += 1,
            other => expect_quota(other),
        }
    }
    assert_eq!(recorded, 4);
    assert_eq!(r.count_seats(tenant.id).await.expect("seats"), 5);
}

/// Accepting needs the token's digest, creates the invited user with its role once, and the
/// invitation is used up.
pub async fn accepting_an_invitation_creates_its_user_once(r: &dyn TenantRegistry) {
    let (tenant, owner) = tenant_with_owner(r).await;
    let email = unique_email("invited");
    let (new, token) = invitation(
        tenant.id,
        Some(owner.id),
        email.clone(),
        Role::Admin,
        Duration::days(1),
    );
    let created = r.create_invitation(new, 10).await.expect("invite");
    let wrong = OpaqueToken::generate(*created.id.as_uuid());
    expect_not_found(
        r.accept_invitation(created.id, &wrong.digest(), hash())
            .await,
        Entity::Invitation,
    );
    let user = r
        .accept_invitation(created.id, &token.digest(), hash())
        .await
        .expect("accept");
    assert_eq!(
        (user.tenant_id, &user.email, user.role),
        (tenant.id, &email, Role::Admin)
    );
    assert_eq!(user.password_hash, hash());
    assert_eq!(r.get_user(user.id).await.expect("get"), user);
    expect_not_found(
        r.accept_invitation(created.id, &token.digest(), hash())
            .await,
        Entity::Invitation,
    );
    assert!(
        r.get_invitation(created.id)
            .await
            .expect("get")
            .accepted_at
            .is_some()
    );
    assert!(
        r.list_invitations(tenant.id)
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(r.count_seats(tenant.id).await.expect("seats"), 2);
    expect_not_found(
        r.revoke_invitation(tenant.id, created.id).await,
        Entity::Invitation,
    );
}

/// An invitation the operator made records no inviter, also in a tenant that has no user
/// yet (a restored one): accepted, it makes the tenant's first user, an owner.
pub async fn an_operators_invitation_records_no_inviter(r: &dyn TenantRegistry) {
    let tenant = r
        .create_tenant(sample_tenant(Isolation::Shared))
        .await
        .expect("tenant");
    let email = unique_email("first");
    let (new, token) = invitation(
        tenant.id,
        None,
        email.clone(),
        Role::Owner,
        Duration::days(1),
    );
    let created = r.create_invitation(new, 10).await.expect("invite");
    assert_eq!(created.invited_by, None);
    assert_eq!(r.get_invitation(created.id).await.expect("get"), created);
    assert_eq!(
        r.list_invitations(tenant.id).await.expect("list")[0].invited_by,
        None
    );
    let user = r
        .accept_invitation(created.id, &token.digest(), hash())
        .await
        .expect("accept");
    assert_eq!((user.tenant_id, user.role), (tenant.id, Role::Owner));
    assert_eq!(r.list_users(tenant.id).await.expect("users"), vec![user]);
}

/// Expired and revoked invitations are refused, are not listed, take no seat, and an expired
/// one gives way to a new invitation of the same e-mail.
pub async fn expired_or_revoked_invitations_are_refused(r: &dyn TenantRegistry) {
    let (tenant, owner) = tenant_with_owner(r).await;
    let email = unique_email("late");
    let (new, token) = invitation(
        tenant.id,
        Some(owner.id),
        email.clone(),
        Role::Member,
        Duration::seconds(-1),
    );
    let expired = r.create_invitation(new, 10).await.expect("invite");
    expect_not_found(
        r.accept_invitation(expired.id, &token.digest(), hash())
            .await,
        Entity::Invitation,
    );
    assert!(
        r.list_invitations(tenant.id)
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(r.count_seats(tenant.id).await.expect("seats"), 1);
    let (again, again_token) = invitation(
        tenant.id,
        Some(owner.id),
        email,
        Role::Member,
        Duration::days(1),
    );
    let again = r.create_invitation(again, 10).await.expect("invite again");
    r.revoke_invitation(tenant.id, again.id)
        .await
        .expect("revoke");
    expect_not_found(
        r.accept_invitation(again.id, &again_token.digest(), hash())
            .await,
        Entity::Invitation,
    );
    assert_eq!(r.list_users(tenant.id).await.expect("users").len(), 1);
}

/// 8 racing acceptances of one invitation: one user is created.
pub async fn racing_acceptances_one_winner(r: &dyn TenantRegistry) {
    let (tenant, owner) = tenant_with_owner(r).await;
    let (new, token) = invitation(
        tenant.id,
        Some(owner.id),
        unique_email("once"),
        Role::Member,
        Duration::days(1),
    );
    let created = r.create_invitation(new, 10).await.expect("invite");
    let digest = token.digest();
    let results = run_concurrently(8, |_| r.accept_invitation(created.id, &digest, hash()));
    let mut winners = 0;
    for result in results {
        match result {
            Ok(_) => winners += 1,
            other => expect_not_found(other, Entity::Invitation),
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(r.list_users(tenant.id).await.expect("users").len(), 2);
}
