//! `TenantRegistry`: the system of record for tenants and their users.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::domain::{
    Email, MAX_PAGE_SIZE, NewTenant, NewUser, Page, PasswordHash, ServerId, Tenant, TenantId,
    TenantQuery, TenantSlug, TenantStatus, TenantUpdate, User, UserId,
};
use crate::error::Result;

/// Creates, finds, lists and updates tenants and their users.
///
/// # Contract
/// - Slugs and domains are unique across tenants; e-mails are unique across all users.
/// - [`create_tenant_with_owner`](TenantRegistry::create_tenant_with_owner) is atomic: either
///   both the tenant and its owner exist afterwards, or neither does.
/// - [`transition`](TenantRegistry::transition) applies only transitions that
///   [`TenantStatus::can_transition_to`] allows, atomically with respect to concurrent callers
///   (two racing transitions from the same status: one wins, the other gets `InvalidTransition`).
/// - Listings are ordered by id (creation order) and never skip or repeat across pages.
/// - Deleted tenants are still returned by `get_tenant` until purged.
/// - Domains are stored lower case; a lookup by a string that is not a valid host name finds
///   nothing (`Ok(None)`), so a resolver can pass any `Host` header.
/// - [`replace_password_hash`](TenantRegistry::replace_password_hash) is a compare-and-set:
///   of two racing replacements of one hash, one wins and the other gets `Conflict`.
///
/// # Errors
/// - `Conflict` (field `slug`, `domain`, `email` or `id`) when a unique value is taken.
/// - `NotFound` when the tenant or user does not exist.
/// - `InvalidInput` when an input fails validation; `InvalidTransition` for an illegal status change.
/// - `Unavailable` when the backend cannot be reached.
#[async_trait]
pub trait TenantRegistry: std::fmt::Debug + Send + Sync + 'static {
    /// Creates a tenant in status `Pending`.
    async fn create_tenant(&self, tenant: NewTenant) -> Result<Tenant>;

    /// Creates a tenant and its first user in one atomic step.
    async fn create_tenant_with_owner(
        &self,
        tenant: NewTenant,
        owner: NewUser,
    ) -> Result<(Tenant, User)>;

    /// The tenant with this id.
    async fn get_tenant(&self, id: TenantId) -> Result<Tenant>;

    /// The tenant with this slug, if any.
    async fn find_tenant_by_slug(&self, slug: &TenantSlug) -> Result<Option<Tenant>>;

    /// The tenant with this custom domain (case-insensitive), if any.
    async fn find_tenant_by_domain(&self, domain: &str) -> Result<Option<Tenant>>;

    /// One page of tenants matching the query.
    async fn list_tenants(&self, query: &TenantQuery) -> Result<Page<Tenant>>;

    /// How many tenants are in `status` (all non-deleted tenants when `None`).
    async fn count_tenants(&self, status: Option<TenantStatus>) -> Result<u64>;

    /// How many tenants (every status but deleted) are placed on each database server; servers
    /// without tenants are absent. Placement policies weigh servers by it.
    ///
    /// The provided implementation pages through [`list_tenants`](TenantRegistry::list_tenants);
    /// adapters with a query language count in one query.
    async fn count_tenants_by_server(&self) -> Result<BTreeMap<ServerId, u64>> {
        let mut counts = BTreeMap::new();
        let mut query = TenantQuery::default().with_limit(MAX_PAGE_SIZE);
        loop {
            let page = self.list_tenants(&query).await?;
            for tenant in &page.items {
                if tenant.status != TenantStatus::Deleted {
                    *counts.entry(tenant.placement.server.clone()).or_insert(0) += 1;
                }
            }
            match page.next {
                Some(next) => query = query.with_after(Some(next)),
                None => return Ok(counts),
            }
        }
    }

    /// Applies a partial update.
    async fn update_tenant(&self, id: TenantId, update: TenantUpdate) -> Result<Tenant>;

    /// Moves a tenant to another status, recording `reason` (cleared when `None`).
    async fn transition(
        &self,
        id: TenantId,
        to: TenantStatus,
        reason: Option<String>,
    ) -> Result<Tenant>;

    /// Removes a `Deleted` tenant and its users for good.
    ///
    /// # Errors
    /// `InvalidTransition` (from its status, to `Deleted`) when the tenant is not `Deleted`;
    /// `NotFound` when it does not exist.
    async fn purge_tenant(&self, id: TenantId) -> Result<()>;

    /// Adds a user to an existing tenant.
    async fn create_user(&self, user: NewUser) -> Result<User>;

    /// The user with this id.
    async fn get_user(&self, id: UserId) -> Result<User>;

    /// The user with this e-mail, if any.
    async fn find_user_by_email(&self, email: &Email) -> Result<Option<User>>;

    /// A tenant's users, oldest first.
    async fn list_users(&self, tenant: TenantId) -> Result<Vec<User>>;

    /// Replaces a user's password hash with `new` if it is still `current`: after a password
    /// change, or to upgrade a hash made with older costs at login. Being a compare-and-set,
    /// an upgrade racing a password change never brings the old password back.
    ///
    /// # Errors
    /// `Conflict` (entity `User`, field `password_hash`) when the stored hash is no longer
    /// `current`; `NotFound` (entity `User`) when the user does not exist.
    async fn replace_password_hash(
        &self,
        id: UserId,
        current: &PasswordHash,
        new: PasswordHash,
    ) -> Result<User>;
}
