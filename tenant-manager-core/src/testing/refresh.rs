//! Conformance suite of [`RefreshTokenStore`]: rotation, reuse detection, revocation by
//! family and by user, expiry, racing rotations.

use time::{Duration, OffsetDateTime};

use crate::domain::{OpaqueToken, RefreshTokenId, TenantId, UserId};
use crate::error::Error;
use crate::testing::run_concurrently;
use crate::traits::{NewRefreshToken, RefreshToken, RefreshTokenStore, Successor};

/// Expands one `#[tokio::test]` per refresh token store case, each on a fresh fixture from
/// `$factory` (`async fn() -> Fixture<dyn RefreshTokenStore>`).
#[macro_export]
macro_rules! refresh_token_conformance {
    ($factory:path) => {
        $crate::__conformance_cases!($factory; refresh;
            rotation_gives_a_successor_in_the_family,
            reuse_of_a_rotated_token_revokes_the_family,
            a_wrong_digest_changes_nothing,
            expired_tokens_are_refused,
            logout_revokes_the_family,
            revoking_a_user_revokes_only_its_tokens,
            racing_rotations_one_winner,
            expired_tokens_are_pruned,
        );
    };
}

/// A fresh token of `user` in `tenant`, expiring in `ttl`.
fn token(user: UserId, tenant: TenantId, ttl: Duration) -> (NewRefreshToken, OpaqueToken) {
    let id = RefreshTokenId::new();
    let opaque = OpaqueToken::generate(*id.as_uuid());
    let new = NewRefreshToken::new(
        id,
        user,
        tenant,
        opaque.digest(),
        OffsetDateTime::now_utc() + ttl,
    );
    (new, opaque)
}

/// A successor (of any token).
fn successor(_of: &RefreshToken) -> (Successor, OpaqueToken) {
    let id = RefreshTokenId::new();
    let opaque = OpaqueToken::generate(*id.as_uuid());
    let next = Successor::new(
        id,
        opaque.digest(),
        OffsetDateTime::now_utc() + Duration::days(1),
    );
    (next, opaque)
}

fn expect_refused<T: std::fmt::Debug>(result: crate::Result<T>) {
    assert!(
        matches!(result, Err(Error::Unauthenticated { .. })),
        "expected a refusal, got {result:?}"
    );
}

async fn login(s: &dyn RefreshTokenStore) -> (RefreshToken, OpaqueToken) {
    let (new, opaque) = token(UserId::new(), TenantId::new(), Duration::days(1));
    let stored = s.insert(new.clone()).await.expect("insert");
    assert_eq!((stored.id, stored.family), (new.id, new.id));
    (stored, opaque)
}

/// A rotation stores a successor in the same family, for the same user and tenant; the old
/// token is used up.
pub async fn rotation_gives_a_successor_in_the_family(s: &dyn RefreshTokenStore) {
    let (first, first_token) = login(s).await;
    let (next, next_token) = successor(&first);
    let second = s
        .rotate(first.id, &first_token.digest(), next.clone())
        .await
        .expect("rotate");
    assert_eq!(second.id, next.id);
    assert_eq!(second.family, first.family);
    assert_eq!(
        (second.user_id, second.tenant_id),
        (first.user_id, first.tenant_id)
    );
    assert!(second.rotated_at.is_none() && second.revoked_at.is_none());
    let (third, _) = successor(&second);
    let third = s
        .rotate(second.id, &next_token.digest(), third)
        .await
        .expect("rotate the successor");
    assert_eq!(
        (third.family, third.user_id, third.tenant_id),
        (first.family, first.user_id, first.tenant_id)
    );
}

/// Presenting a rotated token again is reuse: its whole family is revoked, the successor too.
pub async fn reuse_of_a_rotated_token_revokes_the_family(s: &dyn RefreshTokenStore) {
    let (first, first_token) = login(s).await;
    let (next, next_token) = successor(&first);
    let second = s
        .rotate(first.id, &first_token.digest(), next)
        .await
        .expect("rotate");
    let (again, _) = successor(&first);
    expect_refused(s.rotate(first.id, &first_token.digest(), again).await);
    let (after, _) = successor(&second);
    expect_refused(s.rotate(second.id, &next_token.digest(), after).await);
}

/// A wrong digest is refused and neither uses up nor revokes the token.
pub async fn a_wrong_digest_changes_nothing(s: &dyn RefreshTokenStore) {
    let (first, first_token) = login(s).await;
    let forged = OpaqueToken::generate(*first.id.as_uuid());
    let (next, _) = successor(&first);
    expect_refused(s.rotate(first.id, &forged.digest(), next).await);
    assert!(
        !s.revoke_family(first.id, &forged.digest())
            .await
            .expect("logout")
    );
    let (next, _) = successor(&first);
    s.rotate(first.id, &first_token.digest(), next)
        .await
        .expect("still live");
    let (next, _) = successor(&first);
    expect_refused(
        s.rotate(RefreshTokenId::new(), &first_token.digest(), next)
            .await,
    );
}

/// An expired token is refused.
pub async fn expired_tokens_are_refused(s: &dyn RefreshTokenStore) {
    let (new, opaque) = token(UserId::new(), TenantId::new(), Duration::seconds(-1));
    let stored = s.insert(new).await.expect("insert");
    let (next, _) = successor(&stored);
    expect_refused(s.rotate(stored.id, &opaque.digest(), next).await);
}

/// Logout revokes the family: neither the presented token nor its predecessors' successors
/// rotate afterwards; other families are untouched.
pub async fn logout_revokes_the_family(s: &dyn RefreshTokenStore) {
    let (first, first_token) = login(s).await;
    let (other, other_token) = login(s).await;
    let (next, next_token) = successor(&first);
    let second = s
        .rotate(first.id, &first_token.digest(), next)
        .await
        .expect("rotate");
    assert!(
        s.revoke_family(second.id, &next_token.digest())
            .await
            .expect("logout")
    );
    assert!(
        s.revoke_family(second.id, &next_token.digest())
            .await
            .expect("idempotent")
    );
    let (after, _) = successor(&second);
    expect_refused(s.rotate(second.id, &next_token.digest(), after).await);
    let (after, _) = successor(&other);
    s.rotate(other.id, &other_token.digest(), after)
        .await
        .expect("another login is untouched");
}

/// Revoking a user revokes every live token of that user, in every family, and no other's.
pub async fn revoking_a_user_revokes_only_its_tokens(s: &dyn RefreshTokenStore) {
    let user = UserId::new();
    let tenant = TenantId::new();
    let (a, a_token) = token(user, tenant, Duration::days(1));
    let (b, b_token) = token(user, TenantId::new(), Duration::days(1));
    let a = s.insert(a).await.expect("a");
    let b = s.insert(b).await.expect("b");
    let (other, other_token) = login(s).await;
    assert_eq!(s.revoke_user(user).await.expect("revoke"), 2);
    assert_eq!(s.revoke_user(user).await.expect("again"), 0);
    for (record, opaque) in [(&a, &a_token), (&b, &b_token)] {
        let (next, _) = successor(record);
        expect_refused(s.rotate(record.id, &opaque.digest(), next).await);
    }
    let (next, _) = successor(&other);
    s.rotate(other.id, &other_token.digest(), next)
        .await
        .expect("other user untouched");
}

/// Of 8 racing rotations of one token exactly one wins (and the losers' reuse revokes the
/// family, winner's successor included).
pub async fn racing_rotations_one_winner(s: &dyn RefreshTokenStore) {
    let (first, first_token) = login(s).await;
    let digest = first_token.digest();
    let nexts: Vec<(Successor, OpaqueToken)> = (0..8).map(|_| successor(&first)).collect();
    let results = run_concurrently(nexts.len(), |i| {
        s.rotate(first.id, &digest, nexts[i].0.clone())
    });
    let mut winners = Vec::new();
    for (i, result) in results.into_iter().enumerate() {
        match result {
            Ok(record) => winners.push((i, record)),
            other => expect_refused(other),
        }
    }
    assert_eq!(winners.len(), 1);
    let (i, record) = &winners[0];
    let (after, _) = successor(record);
    expect_refused(s.rotate(record.id, &nexts[*i].1.digest(), after).await);
}

/// Pruning deletes the tokens expired before the given time, and only those.
pub async fn expired_tokens_are_pruned(s: &dyn RefreshTokenStore) {
    let (old, old_token) = token(UserId::new(), TenantId::new(), Duration::days(-30));
    let old = s.insert(old).await.expect("old");
    let (live, live_token) = login(s).await;
    let pruned = s
        .prune_expired(OffsetDateTime::now_utc() - Duration::days(1))
        .await
        .expect("prune");
    assert!(pruned >= 1, "{pruned}");
    assert!(
        !s.revoke_family(old.id, &old_token.digest())
            .await
            .expect("gone")
    );
    assert!(
        s.revoke_family(live.id, &live_token.digest())
            .await
            .expect("kept")
    );
}
