//! [`TenantRegistry`] for [`InMemoryRegistry`]: creation through claims, lookups through the
//! indexes, transitions under the tenant's entry lock.

use std::sync::PoisonError;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{Claims, InMemoryRegistry, claim, matches, taken, through};
use crate::domain::{
    Email, Invitation, InvitationId, NewInvitation, NewTenant, NewUser, Page, PasswordHash, Role,
    Tenant, TenantId, TenantQuery, TenantSlug, TenantStatus, TenantUpdate, TokenDigest, User,
    UserId, validate_domain, validate_status_reason,
};
use crate::error::{Entity, Error, Result};
use crate::traits::TenantRegistry;

#[async_trait]
impl TenantRegistry for InMemoryRegistry {
    async fn create_tenant(&self, tenant: NewTenant) -> Result<Tenant> {
        let tenant = Self::prepare_tenant(tenant)?;
        let mut claims = Claims::default();
        self.claim_tenant(&mut claims, &tenant)?;
        let record = tenant.into_tenant(OffsetDateTime::now_utc());
        self.publish_tenant(record.clone())?;
        claims.commit();
        Ok(record)
    }

    async fn create_tenant_with_owner(
        &self,
        tenant: NewTenant,
        owner: NewUser,
    ) -> Result<(Tenant, User)> {
        let tenant = Self::prepare_tenant(tenant)?;
        if owner.tenant_id != tenant.id {
            return Err(Error::invalid(
                "tenant_id",
                "the owner must belong to the new tenant",
            ));
        }
        if self.users.contains_key(&owner.id) {
            return Err(taken(Entity::User, "id", owner.id));
        }
        let mut claims = Claims::default();
        self.claim_owner_email(&mut claims, &owner)?;
        self.claim_tenant(&mut claims, &tenant)?;
        self.claim_user(&mut claims, &owner)?;
        let now = OffsetDateTime::now_utc();
        let tenant = tenant.into_tenant(now);
        let user = owner.into_user(now);
        self.publish_tenant(tenant.clone())?;
        if let Err(e) = self.publish_user(user.clone()) {
            // Only a caller reusing a user id concurrently gets here: withdraw the tenant.
            self.unpublish_tenant(tenant.id);
            return Err(e);
        }
        claims.commit();
        Ok((tenant, user))
    }

    async fn get_tenant(&self, id: TenantId) -> Result<Tenant> {
        self.tenants
            .get(&id)
            .map(|t| t.clone())
            .ok_or_else(|| Error::not_found(Entity::Tenant, id))
    }

    async fn find_tenant_by_slug(&self, slug: &TenantSlug) -> Result<Option<Tenant>> {
        Ok(through(&self.by_slug, &self.tenants, slug))
    }

    async fn find_tenant_by_domain(&self, domain: &str) -> Result<Option<Tenant>> {
        if validate_domain(domain).is_err() {
            return Ok(None);
        }
        let domain = domain.to_ascii_lowercase();
        Ok(through(&self.by_domain, &self.tenants, &domain))
    }

    async fn list_tenants(&self, query: &TenantQuery) -> Result<Page<Tenant>> {
        query.validate()?;
        let limit = query.limit as usize;
        let mut items = Vec::with_capacity(limit.min(64));
        let mut cursor = query.after;
        // One more than the page, to know whether another page follows.
        'scan: loop {
            let ids = self.ids_after(cursor);
            let Some(last) = ids.last().copied() else {
                break;
            };
            for id in ids {
                let Some(tenant) = self.tenants.get(&id).map(|t| t.clone()) else {
                    continue;
                };
                if matches(query, &tenant) {
                    items.push(tenant);
                    if items.len() > limit {
                        break 'scan;
                    }
                }
            }
            cursor = Some(last);
        }
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|t| t.id)
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn count_tenants(&self, status: Option<TenantStatus>) -> Result<u64> {
        Ok(match status {
            Some(status) => self.count(status).load(Ordering::Relaxed),
            None => TenantStatus::ALL
                .iter()
                .filter(|s| **s != TenantStatus::Deleted)
                .map(|s| self.count(*s).load(Ordering::Relaxed))
                .sum(),
        })
    }

    async fn update_tenant(&self, id: TenantId, update: TenantUpdate) -> Result<Tenant> {
        update.validate()?;
        // The tenant's entry guard serialises updates of this tenant.
        let mut tenant = self
            .tenants
            .get_mut(&id)
            .ok_or_else(|| Error::not_found(Entity::Tenant, id))?;
        let old_domain = tenant.domain.clone();
        let new_domain = update
            .domain
            .as_ref()
            .map(|d| d.as_deref().map(str::to_ascii_lowercase));
        if let Some(Some(domain)) = &new_domain
            && old_domain.as_deref() != Some(domain.as_str())
        {
            claim(
                &self.by_domain,
                domain.clone(),
                id,
                Entity::Tenant,
                "domain",
            )?;
        }
        update.apply(&mut tenant, OffsetDateTime::now_utc());
        if let Some(old) = old_domain
            && tenant.domain.as_deref() != Some(old.as_str())
        {
            self.by_domain.remove_if(&old, |_, owner| *owner == id);
        }
        Ok(tenant.clone())
    }

    async fn transition(
        &self,
        id: TenantId,
        to: TenantStatus,
        reason: Option<String>,
    ) -> Result<Tenant> {
        validate_status_reason(reason.as_deref())?;
        let mut tenant = self
            .tenants
            .get_mut(&id)
            .ok_or_else(|| Error::not_found(Entity::Tenant, id))?;
        let from = tenant.status;
        if !from.can_transition_to(to) {
            return Err(Error::InvalidTransition {
                tenant: id,
                from,
                to,
            });
        }
        tenant.status = to;
        tenant.status_reason = reason;
        tenant.updated_at = OffsetDateTime::now_utc();
        self.count(from).fetch_sub(1, Ordering::Relaxed);
        self.count(to).fetch_add(1, Ordering::Relaxed);
        Ok(tenant.clone())
    }

    async fn purge_tenant(&self, id: TenantId) -> Result<()> {
        let Some((_, tenant)) = self
            .tenants
            .remove_if(&id, |_, t| t.status == TenantStatus::Deleted)
        else {
            let status = self.tenants.get(&id).map(|t| t.status);
            return Err(match status {
                Some(from) => Error::InvalidTransition {
                    tenant: id,
                    from,
                    to: TenantStatus::Deleted,
                },
                None => Error::not_found(Entity::Tenant, id),
            });
        };
        self.count(TenantStatus::Deleted)
            .fetch_sub(1, Ordering::Relaxed);
        self.order
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
        self.by_slug
            .remove_if(&tenant.slug, |_, owner| *owner == id);
        if let Some(domain) = &tenant.domain {
            self.by_domain.remove_if(domain, |_, owner| *owner == id);
        }
        let members = self.members.remove(&id).map(|(_, m)| m).unwrap_or_default();
        for user_id in members {
            if let Some((_, user)) = self.users.remove(&user_id) {
                self.unindex_user(&user);
            }
        }
        let invited = self.invited.remove(&id).map(|(_, i)| i).unwrap_or_default();
        for invitation in invited {
            self.invitations.remove(&invitation);
        }
        Ok(())
    }

    async fn create_user(&self, user: NewUser) -> Result<User> {
        let tenant_status = self.tenants.get(&user.tenant_id).map(|t| t.status);
        match tenant_status {
            None => return Err(Error::not_found(Entity::Tenant, user.tenant_id)),
            Some(TenantStatus::Deleting | TenantStatus::Deleted) => {
                return Err(Error::invalid("tenant_id", "the tenant is being deleted"));
            }
            Some(_) => {}
        }
        let mut claims = Claims::default();
        self.claim_user(&mut claims, &user)?;
        let user = user.into_user(OffsetDateTime::now_utc());
        self.publish_user(user.clone())?;
        claims.commit();
        Ok(user)
    }

    async fn get_user(&self, id: UserId) -> Result<User> {
        self.users
            .get(&id)
            .map(|u| u.clone())
            .ok_or_else(|| Error::not_found(Entity::User, id))
    }

    async fn find_user_by_email(&self, email: &Email) -> Result<Option<User>> {
        Ok(self.users_by_email(email).into_iter().next())
    }

    async fn find_users_by_email(&self, email: &Email) -> Result<Vec<User>> {
        Ok(self.users_by_email(email))
    }

    async fn update_user_role(&self, tenant: TenantId, user: UserId, role: Role) -> Result<User> {
        self.set_role(tenant, user, role)
    }

    async fn delete_user(&self, tenant: TenantId, user: UserId) -> Result<User> {
        self.remove_user(tenant, user)
    }

    async fn create_invitation(
        &self,
        invitation: NewInvitation,
        max_users: u64,
    ) -> Result<Invitation> {
        self.invite(invitation, max_users, OffsetDateTime::now_utc())
    }

    async fn get_invitation(&self, id: InvitationId) -> Result<Invitation> {
        self.invitations
            .get(&id)
            .map(|i| i.clone())
            .ok_or_else(|| Error::not_found(Entity::Invitation, id))
    }

    async fn list_invitations(&self, tenant: TenantId) -> Result<Vec<Invitation>> {
        Ok(self.pending_invitations(tenant, OffsetDateTime::now_utc()))
    }

    async fn revoke_invitation(&self, tenant: TenantId, id: InvitationId) -> Result<Invitation> {
        self.revoke(tenant, id, OffsetDateTime::now_utc())
    }

    async fn accept_invitation(
        &self,
        id: InvitationId,
        digest: &TokenDigest,
        password_hash: PasswordHash,
    ) -> Result<User> {
        self.accept(id, digest, password_hash, OffsetDateTime::now_utc())
    }

    async fn count_seats(&self, tenant: TenantId) -> Result<u64> {
        let members = self.members.get(&tenant).map_or(0, |m| m.len());
        let pending = self
            .pending_invitations(tenant, OffsetDateTime::now_utc())
            .len();
        Ok(u64::try_from(members + pending).unwrap_or(u64::MAX))
    }

    async fn list_users(&self, tenant: TenantId) -> Result<Vec<User>> {
        if !self.tenants.contains_key(&tenant) {
            return Err(Error::not_found(Entity::Tenant, tenant));
        }
        let ids = self
            .members
            .get(&tenant)
            .map(|m| m.clone())
            .unwrap_or_default();
        Ok(ids
            .into_iter()
            .filter_map(|id| self.users.get(&id).map(|u| u.clone()))
            .collect())
    }

    async fn replace_password_hash(
        &self,
        id: UserId,
        current: &PasswordHash,
        new: PasswordHash,
    ) -> Result<User> {
        // The user's entry guard makes the compare and the set one step.
        let mut user = self
            .users
            .get_mut(&id)
            .ok_or_else(|| Error::not_found(Entity::User, id))?;
        if user.password_hash != *current {
            return Err(Error::conflict(
                Entity::User,
                "password_hash",
                "the password hash changed since it was read",
            ));
        }
        user.password_hash = new;
        Ok(user.clone())
    }
}
