//! Users of a tenant managed by its owners and admins: invitations, roles, removal, and a
//! user's own password.
//!
//! The caller is always a user of the tenant its access token names (`tenant`, `actor`). The
//! actor is read again from the registry on every call, so a removed user, or a demoted one,
//! loses these rights at once, even while its access token is still valid.

use std::time::Duration;

use time::OffsetDateTime;

use super::TenantManager;
use crate::domain::{
    Email, Invitation, InvitationId, NewInvitation, OpaqueToken, Role, Secret, Tenant, TenantId,
    User, UserId,
};
use crate::error::{Entity, Error, Result};
use crate::traits::UsageKind;

/// A recorded invitation and its token, to send to the invitee (shown once, never stored).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Invited {
    /// The invitation.
    pub invitation: Invitation,
    /// The token that accepts it.
    pub token: Secret,
}

/// The refusal of a user who may not manage users.
fn not_a_manager() -> Error {
    Error::forbidden("only owners and admins manage users")
}

/// An invitation's validity: between 1 second and 90 days.
pub(super) fn invitation_ttl(ttl: Duration) -> Result<time::Duration> {
    time::Duration::try_from(ttl)
        .ok()
        .filter(|t| t.is_positive() && *t <= time::Duration::days(90))
        .ok_or_else(|| Error::invalid("ttl", "must be between 1 second and 90 days"))
}

impl TenantManager {
    /// The caller as the registry knows it now: a user of `tenant`.
    ///
    /// # Errors
    /// `Unauthenticated` when the user no longer exists or belongs to another tenant.
    pub async fn current_user(&self, tenant: TenantId, actor: UserId) -> Result<User> {
        match self.inner.ops.registry.get_user(actor).await {
            Ok(user) if user.tenant_id == tenant => Ok(user),
            Ok(_) | Err(Error::NotFound { .. }) => Err(Error::unauthenticated(
                "the user of this token no longer exists",
            )),
            Err(e) => Err(e),
        }
    }

    /// The caller, when it is an owner or admin of `tenant`.
    async fn manager_of(&self, tenant: TenantId, actor: UserId) -> Result<User> {
        let user = self.current_user(tenant, actor).await?;
        if user.role.includes(Role::Admin) {
            Ok(user)
        } else {
            Err(not_a_manager())
        }
    }

    /// A user of `tenant` (not found for a user of another tenant).
    async fn user_of(&self, tenant: TenantId, user: UserId) -> Result<User> {
        match self.inner.ops.registry.get_user(user).await {
            Ok(found) if found.tenant_id == tenant => Ok(found),
            Ok(_) => Err(Error::not_found(Entity::User, user)),
            Err(e) => Err(e),
        }
    }

    /// Invites `email` to `tenant` with `role`, valid for `ttl`. An admin invites admins and
    /// members; only an owner invites owners. The tenant's users plus pending invitations
    /// must stay within its quota's `max_users`.
    ///
    /// # Errors
    /// - `InvalidInput` on `email` or `role`; on `ttl` for a zero or over-long validity.
    /// - `Forbidden` for a member, or a role above the caller's own.
    /// - `QuotaExceeded` (quota `users`, no retry delay) when the seats are taken.
    /// - `Conflict` on `email` when a user of the tenant or a pending invitation has it.
    /// - `Unauthenticated` when the caller no longer exists.
    pub async fn invite_user(
        &self,
        tenant: &Tenant,
        actor: UserId,
        email: &str,
        role: &str,
        ttl: Duration,
    ) -> Result<Invited> {
        let email = Email::parse_field(email, "email")?;
        let role: Role = role.parse()?;
        let ttl = invitation_ttl(ttl)?;
        let inviter = self.manager_of(tenant.id, actor).await?;
        if !inviter.role.includes(role) {
            return Err(Error::forbidden("cannot grant a role above your own"));
        }
        self.record_invitation(tenant, email, role, Some(inviter.id), ttl)
            .await
    }

    /// Invites `email` to `tenant` with `role` on the operator's behalf (no inviting user, so
    /// no role check): the e-mail rules, the validity bounds and the `max_users` quota apply
    /// as for [`TenantManager::invite_user`]. The invitation records no inviter
    /// (`invited_by` is `None`: the operator invited), so a tenant without users, a restored
    /// one say, can get its first owner this way.
    ///
    /// # Errors
    /// As [`TenantManager::invite_user`], without `Forbidden` and `Unauthenticated`.
    pub async fn invite_user_as_operator(
        &self,
        tenant: &Tenant,
        email: &str,
        role: &str,
        ttl: Duration,
    ) -> Result<Invited> {
        let email = Email::parse_field(email, "email")?;
        let role: Role = role.parse()?;
        let ttl = invitation_ttl(ttl)?;
        self.record_invitation(tenant, email, role, None, ttl).await
    }

    /// Records an invitation within the tenant's `max_users` and returns it with its token.
    pub(super) async fn record_invitation(
        &self,
        tenant: &Tenant,
        email: Email,
        role: Role,
        inviter: Option<UserId>,
        ttl: time::Duration,
    ) -> Result<Invited> {
        let id = InvitationId::new();
        let token = OpaqueToken::generate(*id.as_uuid());
        let new = NewInvitation::new(
            id,
            tenant.id,
            email,
            role,
            inviter,
            token.digest(),
            OffsetDateTime::now_utc() + ttl,
        );
        let max_users = self.effective_quota(tenant).max_users;
        let invitation = self
            .inner
            .ops
            .registry
            .create_invitation(new, max_users)
            .await?;
        Ok(Invited {
            invitation,
            token: token.to_secret(),
        })
    }

    /// The pending invitations of `tenant`, oldest first.
    ///
    /// # Errors
    /// `Forbidden` for a member; `Unauthenticated` when the caller no longer exists.
    pub async fn list_invitations(
        &self,
        tenant: TenantId,
        actor: UserId,
    ) -> Result<Vec<Invitation>> {
        self.manager_of(tenant, actor).await?;
        self.inner.ops.registry.list_invitations(tenant).await
    }

    /// Revokes a pending invitation of `tenant`.
    ///
    /// # Errors
    /// `Forbidden` for a member; `NotFound` (entity `Invitation`) when it is not a pending
    /// invitation of `tenant`.
    pub async fn revoke_invitation(
        &self,
        tenant: TenantId,
        actor: UserId,
        id: InvitationId,
    ) -> Result<Invitation> {
        self.manager_of(tenant, actor).await?;
        self.inner.ops.registry.revoke_invitation(tenant, id).await
    }

    /// Accepts an invitation with its token: creates the user with `password` (checked by the
    /// password policy, like a registration's).
    ///
    /// # Errors
    /// `InvalidInput` on `token` (malformed) or `password`; `NotFound` (entity `Invitation`)
    /// alike for an unknown, wrong, expired, revoked or used token; `Conflict` on `email`.
    pub async fn accept_invitation(&self, token: &str, password: &str) -> Result<User> {
        let token = OpaqueToken::parse(token, "token")?;
        let id = InvitationId::from_uuid(token.id());
        let registry = &self.inner.ops.registry;
        let invitation = registry.get_invitation(id).await?;
        self.inner
            .policy
            .check(password, Some(&invitation.email), "password")?;
        let hash = self.inner.hasher.hash(password).await?;
        let user = registry
            .accept_invitation(id, &token.digest(), hash)
            .await?;
        self.count_user(user.tenant_id, 1).await;
        Ok(user)
    }

    /// The users of `tenant`, oldest first.
    ///
    /// # Errors
    /// `Forbidden` for a member; `Unauthenticated` when the caller no longer exists.
    pub async fn list_users(&self, tenant: TenantId, actor: UserId) -> Result<Vec<User>> {
        self.manager_of(tenant, actor).await?;
        self.inner.ops.registry.list_users(tenant).await
    }

    /// Gives a user of `tenant` another role. An admin changes admins and members to admin or
    /// member; an owner changes anyone. The last owner keeps its role.
    ///
    /// # Errors
    /// `InvalidInput` on `role`; `Forbidden` for a member, or a role (old or new) above the
    /// caller's; `NotFound` (entity `User`) for a user of another tenant; `Conflict` on `role`
    /// for the last owner.
    pub async fn change_role(
        &self,
        tenant: TenantId,
        actor: UserId,
        user: UserId,
        role: &str,
    ) -> Result<User> {
        let role: Role = role.parse()?;
        let manager = self.manager_of(tenant, actor).await?;
        let target = self.user_of(tenant, user).await?;
        if !manager.role.includes(role) || !manager.role.includes(target.role) {
            return Err(Error::forbidden("cannot manage a role above your own"));
        }
        self.inner
            .ops
            .registry
            .update_user_role(tenant, user, role)
            .await
    }

    /// Removes a user of `tenant`. An admin removes admins and members; an owner anyone. The
    /// last owner stays. Revoking the user's sessions is the caller's job (see the reference
    /// server), as is anything the host keeps about the user.
    ///
    /// # Errors
    /// `Forbidden` for a member, or a user above the caller's role; `NotFound` (entity `User`)
    /// for a user of another tenant; `Conflict` on `role` for the last owner.
    pub async fn remove_user(&self, tenant: TenantId, actor: UserId, user: UserId) -> Result<User> {
        let manager = self.manager_of(tenant, actor).await?;
        let target = self.user_of(tenant, user).await?;
        if !manager.role.includes(target.role) {
            return Err(Error::forbidden("cannot remove a user above your own role"));
        }
        let removed = self.inner.ops.registry.delete_user(tenant, user).await?;
        self.count_user(tenant, -1).await;
        Ok(removed)
    }

    /// Removes a user of `tenant` on the operator's behalf (no caller, so no role check). The
    /// last owner stays. Revoking the user's sessions is the caller's job, as for
    /// [`TenantManager::remove_user`].
    ///
    /// # Errors
    /// `NotFound` (entity `User`) for a user of another tenant; `Conflict` on `role` for the
    /// last owner.
    pub async fn remove_user_as_operator(&self, tenant: TenantId, user: UserId) -> Result<User> {
        self.user_of(tenant, user).await?;
        let removed = self.inner.ops.registry.delete_user(tenant, user).await?;
        self.count_user(tenant, -1).await;
        Ok(removed)
    }

    /// Changes the caller's own password, after verifying the current one.
    ///
    /// # Errors
    /// `InvalidInput` on `current_password` (empty or wrong) or `new_password` (policy);
    /// `Unauthenticated` when the caller no longer exists; `Conflict` on `password_hash` when
    /// the password changed meanwhile.
    pub async fn change_password(
        &self,
        tenant: TenantId,
        actor: UserId,
        current: &str,
        new: &str,
    ) -> Result<User> {
        if current.is_empty() {
            return Err(Error::invalid("current_password", "must not be empty"));
        }
        let user = self.current_user(tenant, actor).await?;
        self.inner
            .policy
            .check(new, Some(&user.email), "new_password")?;
        if !self
            .inner
            .hasher
            .verify(current, &user.password_hash)
            .await?
        {
            return Err(Error::invalid(
                "current_password",
                "is not the current password",
            ));
        }
        let hash = self.inner.hasher.hash(new).await?;
        self.inner
            .ops
            .registry
            .replace_password_hash(user.id, &user.password_hash, hash)
            .await
    }

    /// Keeps the quota enforcer's count of users in step (best effort: the registry is the
    /// system of record, and the invitation already counted the seat).
    async fn count_user(&self, tenant: TenantId, delta: i64) {
        let counted = self
            .inner
            .quota
            .consume_usage(tenant, UsageKind::Users, delta, u64::MAX)
            .await;
        if let Err(e) = counted {
            tracing::warn!(tenant = %tenant, error = %e, "could not count a user");
        }
    }
}
