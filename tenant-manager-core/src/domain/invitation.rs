//! Invitations to join a tenant: e-mail, role, who invited, when it expires.

use serde::Serialize;
use time::OffsetDateTime;

use super::{Email, InvitationId, Role, TenantId, TokenDigest, UserId};

/// Where an invitation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InvitationState {
    /// Waiting to be accepted, and not expired.
    Pending,
    /// Accepted: its user exists.
    Accepted,
    /// Withdrawn by an owner or admin.
    Revoked,
    /// Not accepted in time.
    Expired,
}

/// An invitation to join a tenant with a role. Its token's digest stays out of `Debug`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Invitation {
    /// Identity (also the public part of its token).
    pub id: InvitationId,
    /// The tenant to join.
    pub tenant_id: TenantId,
    /// Who is invited.
    pub email: Email,
    /// The role the user gets.
    pub role: Role,
    /// Who invited: a user of the tenant, or `None` when the operator did.
    pub invited_by: Option<UserId>,
    /// Digest of the token's secret.
    pub token_digest: TokenDigest,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Not accepted after this time.
    pub expires_at: OffsetDateTime,
    /// When it was accepted.
    pub accepted_at: Option<OffsetDateTime>,
    /// When it was revoked.
    pub revoked_at: Option<OffsetDateTime>,
}

impl Invitation {
    /// Its state at `now`.
    pub fn state(&self, now: OffsetDateTime) -> InvitationState {
        if self.accepted_at.is_some() {
            InvitationState::Accepted
        } else if self.revoked_at.is_some() {
            InvitationState::Revoked
        } else if self.expires_at <= now {
            InvitationState::Expired
        } else {
            InvitationState::Pending
        }
    }
}

/// What a registry needs to record an invitation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewInvitation {
    /// Identity: the id of the token the digest was made from.
    pub id: InvitationId,
    /// The tenant to join.
    pub tenant_id: TenantId,
    /// Who is invited.
    pub email: Email,
    /// The role the user gets.
    pub role: Role,
    /// Who invited: a user of the tenant, or `None` when the operator did.
    pub invited_by: Option<UserId>,
    /// Digest of the token's secret.
    pub token_digest: TokenDigest,
    /// Not accepted after this time.
    pub expires_at: OffsetDateTime,
}

impl NewInvitation {
    /// An invitation with the given fields.
    pub fn new(
        id: InvitationId,
        tenant_id: TenantId,
        email: Email,
        role: Role,
        invited_by: Option<UserId>,
        token_digest: TokenDigest,
        expires_at: OffsetDateTime,
    ) -> Self {
        Self {
            id,
            tenant_id,
            email,
            role,
            invited_by,
            token_digest,
            expires_at,
        }
    }

    /// The record this creates at `now`.
    pub fn into_invitation(self, now: OffsetDateTime) -> Invitation {
        Invitation {
            id: self.id,
            tenant_id: self.tenant_id,
            email: self.email,
            role: self.role,
            invited_by: self.invited_by,
            token_digest: self.token_digest,
            created_at: now,
            expires_at: self.expires_at,
            accepted_at: None,
            revoked_at: None,
        }
    }
}
