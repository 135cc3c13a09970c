//! Users: listing order, unknown ids, replacing a password hash.

use crate::domain::{Isolation, PasswordHash, Role, TenantId, User, UserId};
use crate::error::{Entity, Error};
use crate::testing::run_concurrently;
use crate::testing::support::{
    expect_conflict, expect_not_found, random_hex, sample_tenant, sample_user,
};
use crate::traits::TenantRegistry;

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
