//! Users and invitations of [`InMemoryRegistry`]: roles, removal, seats and acceptance, each
//! under the tenant's `members` entry guard so that counts and checks see one state.

use time::OffsetDateTime;

use super::{Claims, InMemoryRegistry, claim};
use crate::domain::{
    Email, Invitation, InvitationId, InvitationState, NewInvitation, NewUser, PasswordHash, Role,
    TenantId, TenantStatus, TokenDigest, User, UserId,
};
use crate::error::{Entity, Error, Result};

/// The refusal of demoting or removing a tenant's last owner.
pub(crate) fn last_owner() -> Error {
    Error::conflict(
        Entity::User,
        "role",
        "a tenant keeps at least one owner: promote another user first",
    )
}

impl InMemoryRegistry {
    /// Every user with `email`, oldest first.
    pub(super) fn users_by_email(&self, email: &Email) -> Vec<User> {
        let ids = self
            .emails
            .get(email)
            .map(|i| i.clone())
            .unwrap_or_default();
        ids.into_iter()
            .filter_map(|id| self.users.get(&id).map(|u| u.clone()))
            .collect()
    }

    /// How many of `members` are owners, `except` one.
    fn other_owners(&self, members: &[UserId], except: UserId) -> usize {
        members
            .iter()
            .filter(|id| **id != except)
            .filter(|id| self.users.get(id).is_some_and(|u| u.role == Role::Owner))
            .count()
    }

    /// Refuses a tenant that is unknown or being deleted.
    fn live_tenant(&self, tenant: TenantId) -> Result<()> {
        match self.tenants.get(&tenant).map(|t| t.status) {
            None => Err(Error::not_found(Entity::Tenant, tenant)),
            Some(TenantStatus::Deleting | TenantStatus::Deleted) => {
                Err(Error::invalid("tenant_id", "the tenant is being deleted"))
            }
            Some(_) => Ok(()),
        }
    }

    pub(super) fn set_role(&self, tenant: TenantId, user: UserId, role: Role) -> Result<User> {
        let members = self.members.get_mut(&tenant);
        let Some(members) = members.filter(|m| m.contains(&user)) else {
            return Err(Error::not_found(Entity::User, user));
        };
        let current = self
            .users
            .get(&user)
            .map(|u| u.role)
            .ok_or_else(|| Error::not_found(Entity::User, user))?;
        if current == Role::Owner && role != Role::Owner && self.other_owners(&members, user) == 0 {
            return Err(last_owner());
        }
        let mut record = self
            .users
            .get_mut(&user)
            .ok_or_else(|| Error::not_found(Entity::User, user))?;
        record.role = role;
        Ok(record.clone())
    }

    pub(super) fn remove_user(&self, tenant: TenantId, user: UserId) -> Result<User> {
        let members = self.members.get_mut(&tenant);
        let Some(mut members) = members.filter(|m| m.contains(&user)) else {
            return Err(Error::not_found(Entity::User, user));
        };
        let role = self
            .users
            .get(&user)
            .map(|u| u.role)
            .ok_or_else(|| Error::not_found(Entity::User, user))?;
        if role == Role::Owner && self.other_owners(&members, user) == 0 {
            return Err(last_owner());
        }
        let (_, removed) = self
            .users
            .remove(&user)
            .ok_or_else(|| Error::not_found(Entity::User, user))?;
        members.retain(|id| *id != user);
        self.unindex_user(&removed);
        Ok(removed)
    }

    /// The tenant's invitations pending at `now`, oldest first.
    pub(super) fn pending_invitations(
        &self,
        tenant: TenantId,
        now: OffsetDateTime,
    ) -> Vec<Invitation> {
        let ids = self
            .invited
            .get(&tenant)
            .map(|i| i.clone())
            .unwrap_or_default();
        ids.into_iter()
            .filter_map(|id| self.invitations.get(&id).map(|i| i.clone()))
            .filter(|i| i.state(now) == InvitationState::Pending)
            .collect()
    }

    pub(super) fn invite(
        &self,
        invitation: NewInvitation,
        max_users: u64,
        now: OffsetDateTime,
    ) -> Result<Invitation> {
        let tenant = invitation.tenant_id;
        self.live_tenant(tenant)?;
        if self.invitations.contains_key(&invitation.id) {
            return Err(Error::conflict(Entity::Invitation, "id", "id is taken"));
        }
        let members = self.members.entry(tenant).or_default();
        let mut invited = self.invited.entry(tenant).or_default();
        let email_taken = members.iter().any(|id| {
            self.users
                .get(id)
                .is_some_and(|u| u.email == invitation.email)
        });
        if email_taken {
            return Err(Error::conflict(
                Entity::User,
                "email",
                "a user of this tenant has this e-mail",
            ));
        }
        let mut pending = 0usize;
        for id in invited.iter() {
            let Some(mut other) = self.invitations.get_mut(id) else {
                continue;
            };
            match other.state(now) {
                InvitationState::Pending if other.email == invitation.email => {
                    return Err(Error::conflict(
                        Entity::Invitation,
                        "email",
                        "this e-mail has a pending invitation",
                    ));
                }
                InvitationState::Pending => pending += 1,
                InvitationState::Expired if other.email == invitation.email => {
                    other.revoked_at = Some(now);
                }
                _ => {}
            }
        }
        let seats = u64::try_from(members.len() + pending).unwrap_or(u64::MAX);
        if seats >= max_users {
            return Err(Error::QuotaExceeded {
                quota: "users".into(),
                limit: max_users,
                retry_after: std::time::Duration::ZERO,
            });
        }
        let record = invitation.into_invitation(now);
        claim(
            &self.invitations,
            record.id,
            record.clone(),
            Entity::Invitation,
            "id",
        )?;
        invited.push(record.id);
        Ok(record)
    }

    pub(super) fn revoke(
        &self,
        tenant: TenantId,
        id: InvitationId,
        now: OffsetDateTime,
    ) -> Result<Invitation> {
        let mut invitation = self
            .invitations
            .get_mut(&id)
            .filter(|i| i.tenant_id == tenant && i.state(now) == InvitationState::Pending)
            .ok_or_else(|| Error::not_found(Entity::Invitation, id))?;
        invitation.revoked_at = Some(now);
        Ok(invitation.clone())
    }

    pub(super) fn accept(
        &self,
        id: InvitationId,
        digest: &TokenDigest,
        password_hash: PasswordHash,
        now: OffsetDateTime,
    ) -> Result<User> {
        let unusable = || Error::not_found(Entity::Invitation, id);
        let tenant = self
            .invitations
            .get(&id)
            .map(|i| i.tenant_id)
            .ok_or_else(unusable)?;
        self.live_tenant(tenant).map_err(|_| unusable())?;
        let mut members = self.members.entry(tenant).or_default();
        let mut invitation = self.invitations.get_mut(&id).ok_or_else(unusable)?;
        // The digest is compared whatever the state, so that timing tells nothing either.
        let matches = invitation.token_digest.ct_eq(digest);
        if !matches || invitation.state(now) != InvitationState::Pending {
            return Err(unusable());
        }
        let new = NewUser::new(
            tenant,
            invitation.email.clone(),
            invitation.role,
            password_hash,
        );
        let mut claims = Claims::default();
        self.claim_user(&mut claims, &new)?;
        let user = new.into_user(now);
        self.publish_user_locked(&mut members, user.clone())?;
        claims.commit();
        invitation.accepted_at = Some(now);
        Ok(user)
    }
}
