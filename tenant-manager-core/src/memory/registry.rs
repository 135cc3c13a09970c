//! `InMemoryRegistry`: the tenant registry of embedded mode.

use std::collections::BTreeSet;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};

use async_trait::async_trait;
use dashmap::DashMap;
use time::OffsetDateTime;

use crate::domain::{
    Email, NewTenant, NewUser, Page, PasswordHash, Tenant, TenantId, TenantQuery, TenantSlug,
    TenantStatus, TenantUpdate, User, UserId, validate_domain, validate_status_reason,
};
use crate::error::{Entity, Error, Result};
use crate::traits::TenantRegistry;

/// A [`TenantRegistry`] in memory: sharded maps, no global lock on reads.
///
/// Lookups by id, slug, domain and e-mail are one or two sharded-map reads, O(1) in the
/// number of tenants. Unique values (slug, domain, e-mail, ids) are claimed in their own
/// index entries before anything becomes visible, and released again if a later claim
/// fails, so concurrent creations of the same value have exactly one winner and a failed
/// creation leaves nothing behind. A tenant becomes visible before its owner, so a reader
/// that finds the owner also finds its tenant. Status changes happen under the tenant's
/// entry lock and call [`TenantStatus::can_transition_to`].
///
/// Listing walks an ordered set of ids (a read-write lock taken only to copy a batch of ids;
/// creation and purge write it). Counting by status reads per-status counters.
///
/// Memory is not bounded: this is the system of record of embedded mode, holding every
/// tenant and user until they are purged (a few hundred bytes each). Everything is lost on
/// restart; use the Postgres registry to keep it.
#[derive(Debug, Default)]
pub struct InMemoryRegistry {
    tenants: DashMap<TenantId, Tenant>,
    by_slug: DashMap<TenantSlug, TenantId>,
    by_domain: DashMap<String, TenantId>,
    users: DashMap<UserId, User>,
    by_email: DashMap<Email, UserId>,
    /// Users of each tenant, oldest first.
    members: DashMap<TenantId, Vec<UserId>>,
    /// Every tenant id, in order, for listing.
    order: RwLock<BTreeSet<TenantId>>,
    /// Tenants per status, indexed like [`TenantStatus::ALL`].
    counts: [AtomicU64; TenantStatus::ALL.len()],
}

/// Ids copied out of the ordered set per step of a listing.
const LIST_BATCH: usize = 256;

fn status_index(status: TenantStatus) -> usize {
    TenantStatus::ALL
        .iter()
        .position(|s| *s == status)
        .unwrap_or_default()
}

/// Unique values claimed so far by one creation, released if it fails.
#[derive(Default)]
struct Claims<'a> {
    registry: Option<&'a InMemoryRegistry>,
    slug: Option<(TenantSlug, TenantId)>,
    domain: Option<(String, TenantId)>,
    email: Option<(Email, UserId)>,
}

impl Claims<'_> {
    /// Keeps the claims: the creation succeeded.
    fn commit(mut self) {
        self.registry = None;
    }
}

impl Drop for Claims<'_> {
    fn drop(&mut self) {
        let Some(r) = self.registry else { return };
        if let Some((slug, id)) = self.slug.take() {
            r.by_slug.remove_if(&slug, |_, owner| *owner == id);
        }
        if let Some((domain, id)) = self.domain.take() {
            r.by_domain.remove_if(&domain, |_, owner| *owner == id);
        }
        if let Some((email, id)) = self.email.take() {
            r.by_email.remove_if(&email, |_, owner| *owner == id);
        }
    }
}

/// Inserts `value` under `key` unless the key is present, else reports a conflict on `field`.
/// Claims unique values in the indexes, and makes records visible under fresh ids.
fn claim<K, V>(
    map: &DashMap<K, V>,
    key: K,
    value: V,
    entity: Entity,
    field: &'static str,
) -> Result<()>
where
    K: Hash + Eq + fmt::Display,
{
    match map.entry(key) {
        dashmap::Entry::Occupied(o) => Err(taken(entity, field, o.key())),
        dashmap::Entry::Vacant(v) => {
            v.insert(value);
            Ok(())
        }
    }
}

fn taken(entity: Entity, field: &'static str, key: impl fmt::Display) -> Error {
    Error::conflict(entity, field, format!("{field} {key} is taken"))
}

/// The record that `key` points at through `index`: a lookup by slug, domain or e-mail.
fn through<K, I, V>(index: &DashMap<K, I>, records: &DashMap<I, V>, key: &K) -> Option<V>
where
    K: Hash + Eq,
    I: Hash + Eq + Copy,
    V: Clone,
{
    let id = index.get(key).map(|id| *id)?;
    records.get(&id).map(|record| record.clone())
}

impl InMemoryRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn count(&self, status: TenantStatus) -> &AtomicU64 {
        &self.counts[status_index(status)]
    }

    /// Validates and normalises a new tenant.
    fn prepare_tenant(tenant: NewTenant) -> Result<NewTenant> {
        tenant.validate()?;
        let name = tenant.name.trim().to_owned();
        let domain = tenant.domain.as_deref().map(str::to_ascii_lowercase);
        let mut tenant = tenant;
        tenant.name = name;
        tenant.domain = domain;
        Ok(tenant)
    }

    /// Claims the tenant's slug and domain.
    fn claim_tenant<'a>(&'a self, claims: &mut Claims<'a>, tenant: &NewTenant) -> Result<()> {
        claims.registry = Some(self);
        claim(
            &self.by_slug,
            tenant.slug.clone(),
            tenant.id,
            Entity::Tenant,
            "slug",
        )?;
        claims.slug = Some((tenant.slug.clone(), tenant.id));
        if let Some(domain) = &tenant.domain {
            claim(
                &self.by_domain,
                domain.clone(),
                tenant.id,
                Entity::Tenant,
                "domain",
            )?;
            claims.domain = Some((domain.clone(), tenant.id));
        }
        Ok(())
    }

    /// Claims a user's e-mail.
    fn claim_user<'a>(&'a self, claims: &mut Claims<'a>, user: &NewUser) -> Result<()> {
        claims.registry = Some(self);
        claim(
            &self.by_email,
            user.email.clone(),
            user.id,
            Entity::User,
            "email",
        )?;
        claims.email = Some((user.email.clone(), user.id));
        Ok(())
    }

    /// Makes a claimed tenant visible, unless its id is taken.
    fn publish_tenant(&self, tenant: Tenant) -> Result<()> {
        let id = tenant.id;
        claim(&self.tenants, id, tenant, Entity::Tenant, "id")?;
        self.count(TenantStatus::Pending)
            .fetch_add(1, Ordering::Relaxed);
        self.order
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id);
        Ok(())
    }

    /// Withdraws a tenant published by [`publish_tenant`](Self::publish_tenant) a moment ago.
    fn unpublish_tenant(&self, id: TenantId) {
        if let Some((_, tenant)) = self.tenants.remove(&id) {
            self.count(tenant.status).fetch_sub(1, Ordering::Relaxed);
        }
        self.order
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }

    /// Makes a claimed user visible, unless its id is taken.
    fn publish_user(&self, user: User) -> Result<()> {
        let (id, tenant) = (user.id, user.tenant_id);
        claim(&self.users, id, user, Entity::User, "id")?;
        self.members.entry(tenant).or_default().push(id);
        Ok(())
    }

    /// Copies up to [`LIST_BATCH`] ids after `after` out of the ordered set.
    fn ids_after(&self, after: Option<TenantId>) -> Vec<TenantId> {
        let order = self.order.read().unwrap_or_else(PoisonError::into_inner);
        let range = match after {
            Some(after) => {
                order.range((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
            }
            None => order.range(..),
        };
        range.take(LIST_BATCH).copied().collect()
    }
}

fn matches(query: &TenantQuery, tenant: &Tenant) -> bool {
    query.status.is_none_or(|s| s == tenant.status)
        && query.plan.as_ref().is_none_or(|p| *p == tenant.plan)
        && query.isolation.is_none_or(|i| i == tenant.isolation)
}

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
                self.by_email
                    .remove_if(&user.email, |_, owner| *owner == user_id);
            }
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
        Ok(through(&self.by_email, &self.users, email))
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
