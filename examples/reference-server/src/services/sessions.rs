//! Sessions: a refresh token issued at login, rotated by `POST /api/auth/refresh`, revoked by
//! logout, a password change and the user's removal.
//!
//! Access tokens are short-lived JWTs checked by signature only (the tenant layer does not
//! look the user up on every request), so a removed user's access token keeps working on
//! routes that do not read the user until it expires (`ACCESS_TOKEN_TTL_SECONDS`). The routes
//! that manage users read the caller from the registry each time, so a removed or demoted user
//! loses them at once; a refresh checks that the user still exists, so no new access token is
//! ever issued to a removed user.

use std::time::Duration;

use tenant_manager::auth::IssuedToken;
use tenant_manager::{
    Error, NewRefreshToken, OpaqueToken, RefreshTokenId, RefreshTokenStore, Result, Secret,
    Successor, TenantStatus, User, UserId, refresh_refused,
};
use time::OffsetDateTime;

use super::Services;

/// A fresh token for `user` and its record, expiring in `ttl`.
fn new_token(user: &User, ttl: Duration) -> (NewRefreshToken, OpaqueToken) {
    let id = RefreshTokenId::new();
    let opaque = OpaqueToken::generate(*id.as_uuid());
    let expires_at = OffsetDateTime::now_utc() + ttl;
    let new = NewRefreshToken::new(id, user.id, user.tenant_id, opaque.digest(), expires_at);
    (new, opaque)
}

/// Starts a session for `user`: its first refresh token.
///
/// # Errors
/// The store's.
pub(crate) async fn start(services: &Services, user: &User, ttl: Duration) -> Result<Secret> {
    let (new, opaque) = new_token(user, ttl);
    services.refresh.insert(new).await?;
    Ok(opaque.to_secret())
}

/// A new access token and the successor of the refresh token `token`.
///
/// # Errors
/// `InvalidInput` on `refresh_token` when it is malformed; `Unauthenticated` when it is
/// unknown, expired, rotated (reuse: its family is revoked) or revoked, or its user is gone;
/// `Suspended` or `NotReady` when its tenant is not active.
pub(crate) async fn refresh(
    services: &Services,
    token: &str,
    ttl: Duration,
) -> Result<(IssuedToken, Secret)> {
    let presented = OpaqueToken::parse(token, "refresh_token")?;
    let id = RefreshTokenId::from_uuid(presented.id());
    let manager = &services.manager;
    let next_id = RefreshTokenId::new();
    let opaque = OpaqueToken::generate(*next_id.as_uuid());
    let next = Successor::new(next_id, opaque.digest(), OffsetDateTime::now_utc() + ttl);
    let rotated = services
        .refresh
        .rotate(id, &presented.digest(), next)
        .await?;
    // A user removed meanwhile gets no new access token (its tokens are revoked again, in
    // case the removal's revocation ran before this rotation).
    let user = match manager.registry().get_user(rotated.user_id).await {
        Ok(user) if user.tenant_id == rotated.tenant_id => user,
        Ok(_) | Err(Error::NotFound { .. }) => {
            services.refresh.revoke_user(rotated.user_id).await?;
            return Err(refresh_refused());
        }
        Err(e) => return Err(e),
    };
    let tenant = manager.get(user.tenant_id).await?;
    match tenant.status {
        TenantStatus::Active => {}
        TenantStatus::Suspended => return Err(Error::Suspended { tenant: tenant.id }),
        status => {
            return Err(Error::NotReady {
                tenant: tenant.id,
                status,
            });
        }
    }
    let access = manager.tokens().issue(&user)?;
    Ok((access, opaque.to_secret()))
}

/// Ends the session of `token` (its whole family); an unknown token is not an error.
///
/// # Errors
/// `InvalidInput` on `refresh_token` when it is malformed; the store's.
pub(crate) async fn end(services: &Services, token: &str) -> Result<()> {
    let presented = OpaqueToken::parse(token, "refresh_token")?;
    let id = RefreshTokenId::from_uuid(presented.id());
    services
        .refresh
        .revoke_family(id, &presented.digest())
        .await?;
    Ok(())
}

/// Ends every session of `user`.
///
/// # Errors
/// The store's.
pub(crate) async fn end_all(services: &Services, user: UserId) -> Result<u64> {
    end_all_in(services.refresh.as_ref(), user).await
}

/// Ends every session of `user` kept in `store` (the removal's revocation, shared with
/// `tenant-cli users remove`).
///
/// # Errors
/// The store's.
pub(crate) async fn end_all_in(store: &dyn RefreshTokenStore, user: UserId) -> Result<u64> {
    store.revoke_user(user).await
}
