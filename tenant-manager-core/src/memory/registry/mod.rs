//! `InMemoryRegistry`: the tenant registry of embedded mode.
//!
//! The type, its indexes and the claims that keep values unique are here; its
//! [`TenantRegistry`](crate::traits::TenantRegistry) methods are in `adapter`.

use std::collections::BTreeSet;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};

use dashmap::DashMap;

use crate::domain::{
    Email, Invitation, InvitationId, NewTenant, NewUser, Tenant, TenantId, TenantQuery, TenantSlug,
    TenantStatus, User, UserId,
};
use crate::error::{Entity, Error, Result};

mod adapter;
mod members;

/// A [`TenantRegistry`](crate::traits::TenantRegistry) in memory: sharded maps, no global lock on reads.
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
    /// The user of each (tenant, e-mail): e-mails are unique within a tenant.
    by_email: DashMap<(TenantId, Email), UserId>,
    /// The users of each e-mail across tenants, oldest first.
    emails: DashMap<Email, Vec<UserId>>,
    /// Users of each tenant, oldest first. A tenant's entry guard also serialises what must
    /// see its users and invitations at once (seats, last owner, acceptance); lock order:
    /// `members`, then `invited`, then `invitations`, then `users`.
    members: DashMap<TenantId, Vec<UserId>>,
    /// Every invitation, in any state.
    invitations: DashMap<InvitationId, Invitation>,
    /// Invitations of each tenant, oldest first.
    invited: DashMap<TenantId, Vec<InvitationId>>,
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
    email: Option<((TenantId, Email), UserId)>,
    /// A new organisation's owner, reserved in the e-mail index across tenants.
    owner: Option<(Email, UserId)>,
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
        if let Some((email, id)) = self.owner.take() {
            r.emails.remove_if_mut(&email, |_, ids| {
                ids.retain(|i| *i != id);
                ids.is_empty()
            });
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

    /// Claims a user's e-mail within its tenant.
    fn claim_user<'a>(&'a self, claims: &mut Claims<'a>, user: &NewUser) -> Result<()> {
        claims.registry = Some(self);
        let key = (user.tenant_id, user.email.clone());
        match self.by_email.entry(key.clone()) {
            dashmap::Entry::Occupied(_) => {
                return Err(taken(Entity::User, "email", &user.email));
            }
            dashmap::Entry::Vacant(v) => {
                v.insert(user.id);
            }
        }
        claims.email = Some((key, user.id));
        Ok(())
    }

    /// Reserves a new organisation's owner e-mail: refused when any user has it.
    fn claim_owner_email<'a>(&'a self, claims: &mut Claims<'a>, user: &NewUser) -> Result<()> {
        claims.registry = Some(self);
        match self.emails.entry(user.email.clone()) {
            dashmap::Entry::Occupied(mut o) => {
                if !o.get().is_empty() {
                    return Err(taken(Entity::User, "email", &user.email));
                }
                o.get_mut().push(user.id);
            }
            dashmap::Entry::Vacant(v) => {
                v.insert(vec![user.id]);
            }
        }
        claims.owner = Some((user.email.clone(), user.id));
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
        let mut members = self.members.entry(user.tenant_id).or_default();
        self.publish_user_locked(&mut members, user)
    }

    /// [`publish_user`](Self::publish_user) under the tenant's `members` entry guard.
    fn publish_user_locked(&self, members: &mut Vec<UserId>, user: User) -> Result<()> {
        let (id, email) = (user.id, user.email.clone());
        claim(&self.users, id, user, Entity::User, "id")?;
        members.push(id);
        let mut ids = self.emails.entry(email).or_default();
        if !ids.contains(&id) {
            ids.push(id);
        }
        Ok(())
    }

    /// Forgets a removed user in the e-mail indexes.
    fn unindex_user(&self, user: &User) {
        self.by_email
            .remove_if(&(user.tenant_id, user.email.clone()), |_, owner| {
                *owner == user.id
            });
        self.emails.remove_if_mut(&user.email, |_, ids| {
            ids.retain(|id| *id != user.id);
            ids.is_empty()
        });
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
