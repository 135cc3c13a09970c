//! `RefreshTokenStore`: refresh tokens kept as digests, rotated on use, revoked by family or
//! by user.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::domain::{RefreshTokenId, TenantId, TokenDigest, UserId};
use crate::error::Result;

/// A stored refresh token: the digest of its secret and what it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RefreshToken {
    /// Identity (the public part of the token).
    pub id: RefreshTokenId,
    /// The id of the first token of its login; every rotation keeps it.
    pub family: RefreshTokenId,
    /// Whose token.
    pub user_id: UserId,
    /// The one tenant the access tokens it gives are for.
    pub tenant_id: TenantId,
    /// Digest of the token's secret.
    pub token_digest: TokenDigest,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Refused from this time on.
    pub expires_at: OffsetDateTime,
    /// When it was exchanged for its successor.
    pub rotated_at: Option<OffsetDateTime>,
    /// When it was revoked (logout, reuse, password change, removal).
    pub revoked_at: Option<OffsetDateTime>,
}

/// What a store needs to record a token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewRefreshToken {
    /// Identity: the id of the token the digest was made from.
    pub id: RefreshTokenId,
    /// Whose token.
    pub user_id: UserId,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// Digest of the token's secret.
    pub token_digest: TokenDigest,
    /// Refused from this time on.
    pub expires_at: OffsetDateTime,
}

impl NewRefreshToken {
    /// A token with the given fields.
    pub fn new(
        id: RefreshTokenId,
        user_id: UserId,
        tenant_id: TenantId,
        token_digest: TokenDigest,
        expires_at: OffsetDateTime,
    ) -> Self {
        Self {
            id,
            user_id,
            tenant_id,
            token_digest,
            expires_at,
        }
    }

    /// The record this creates at `now`, in `family`.
    pub fn into_token(self, family: RefreshTokenId, now: OffsetDateTime) -> RefreshToken {
        RefreshToken {
            id: self.id,
            family,
            user_id: self.user_id,
            tenant_id: self.tenant_id,
            token_digest: self.token_digest,
            created_at: now,
            expires_at: self.expires_at,
            rotated_at: None,
            revoked_at: None,
        }
    }
}

/// The successor of a rotated token: a new id, digest and expiry; the rest is inherited.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Successor {
    /// Identity of the new token.
    pub id: RefreshTokenId,
    /// Digest of the new token's secret.
    pub token_digest: TokenDigest,
    /// Refused from this time on.
    pub expires_at: OffsetDateTime,
}

impl Successor {
    /// A successor with the given fields.
    pub fn new(id: RefreshTokenId, token_digest: TokenDigest, expires_at: OffsetDateTime) -> Self {
        Self {
            id,
            token_digest,
            expires_at,
        }
    }

    /// The record this creates at `now`, succeeding `of`.
    pub fn into_token(self, of: &RefreshToken, now: OffsetDateTime) -> RefreshToken {
        NewRefreshToken::new(
            self.id,
            of.user_id,
            of.tenant_id,
            self.token_digest,
            self.expires_at,
        )
        .into_token(of.family, now)
    }
}

/// Keeps refresh tokens (digests only) and decides, atomically, which may be used.
///
/// # Contract
/// - A token is live while it is not expired, rotated or revoked. Only a live token whose
///   digest matches (compared in constant time) can be rotated, and only once: of racing
///   rotations of one token, one wins.
/// - Presenting the right digest of a token that was already rotated or revoked is reuse: the
///   whole family (every token rotated from the same login) is revoked.
/// - A wrong digest changes nothing (knowing a token's id is not enough to end a session).
/// - Revoking is idempotent.
///
/// # Errors
/// - `Unauthenticated` alike for an unknown id, a wrong digest, an expired, rotated or revoked
///   token.
/// - `Conflict` (field `id`) for an id that is taken.
/// - `Unavailable` when the backend cannot be reached.
#[async_trait]
pub trait RefreshTokenStore: std::fmt::Debug + Send + Sync + 'static {
    /// Records the first token of a login (a family of its own).
    async fn insert(&self, token: NewRefreshToken) -> Result<RefreshToken>;

    /// Exchanges the live token `id` (whose digest must be `digest`) for its successor `next`
    /// (same family, user and tenant). Returns the successor's record.
    async fn rotate(
        &self,
        id: RefreshTokenId,
        digest: &TokenDigest,
        next: Successor,
    ) -> Result<RefreshToken>;

    /// Revokes the family of the token `id` when `digest` is its digest (logout); returns
    /// whether it did.
    async fn revoke_family(&self, id: RefreshTokenId, digest: &TokenDigest) -> Result<bool>;

    /// Revokes every token of a user (password change, removal); returns how many were live.
    async fn revoke_user(&self, user: UserId) -> Result<u64>;

    /// Deletes the tokens that expired before `before`; returns how many.
    async fn prune_expired(&self, before: OffsetDateTime) -> Result<u64>;
}

/// The refusal of every unusable refresh token.
pub fn refresh_refused() -> crate::Error {
    crate::Error::unauthenticated("invalid, expired or revoked refresh token")
}
