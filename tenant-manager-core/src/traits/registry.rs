//! `TenantRegistry`: the system of record for tenants and their users.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::domain::{
    Email, Invitation, InvitationId, MAX_PAGE_SIZE, NewInvitation, NewTenant, NewUser, Page,
    PasswordHash, Role, ServerId, Tenant, TenantId, TenantQuery, TenantSlug, TenantStatus,
    TenantUpdate, TokenDigest, User, UserId,
};
use crate::error::Result;

/// Creates, finds, lists and updates tenants and their users.
///
/// # Contract
/// - Slugs and domains are unique across tenants; an e-mail is unique within a tenant, and may
///   belong to users of several tenants (one per tenant).
/// - A tenant keeps at least one owner: demoting or removing its last owner is refused, also
///   when two such changes race (one wins).
/// - [`create_invitation`](TenantRegistry::create_invitation) counts the tenant's users plus its
///   pending invitations and records the invitation in one atomic step: racing invitations
///   never take more seats than the limit given.
/// - [`accept_invitation`](TenantRegistry::accept_invitation) compares the token digest in
///   constant time and turns a pending invitation into a user in one atomic step: an invitation
///   is accepted at most once, never after it expired or was revoked.
/// - [`create_tenant_with_owner`](TenantRegistry::create_tenant_with_owner) is atomic: either
///   both the tenant and its owner exist afterwards, or neither does. A new organisation is
///   registered by an e-mail no user has (`Conflict` on `email` otherwise, also between racing
///   registrations): an e-mail joins further tenants by invitation.
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

    /// The oldest user with this e-mail, if any (an e-mail may belong to several tenants: see
    /// [`find_users_by_email`](TenantRegistry::find_users_by_email)).
    async fn find_user_by_email(&self, email: &Email) -> Result<Option<User>>;

    /// Every user with this e-mail (at most one per tenant), oldest first.
    async fn find_users_by_email(&self, email: &Email) -> Result<Vec<User>>;

    /// Gives a user of `tenant` another role.
    ///
    /// # Errors
    /// `NotFound` (entity `User`) when the user is not one of `tenant`'s; `Conflict` (field
    /// `role`) when it would leave the tenant without an owner.
    async fn update_user_role(&self, tenant: TenantId, user: UserId, role: Role) -> Result<User>;

    /// Removes a user of `tenant`; returns the removed record.
    ///
    /// # Errors
    /// `NotFound` (entity `User`) when the user is not one of `tenant`'s; `Conflict` (field
    /// `role`) when it is the tenant's last owner.
    async fn delete_user(&self, tenant: TenantId, user: UserId) -> Result<User>;

    /// Records an invitation when the tenant's users plus pending invitations are fewer than
    /// `max_users`. A pending invitation of the same e-mail that expired is revoked first.
    ///
    /// # Errors
    /// `QuotaExceeded` (quota `users`, no retry delay) when the seats are taken; `Conflict`
    /// (field `email`) when a user of the tenant or a pending invitation has the e-mail, (field
    /// `id`) for a taken id; `NotFound` (entity `Tenant`); `InvalidInput` (field `tenant_id`)
    /// for a tenant being deleted.
    async fn create_invitation(
        &self,
        invitation: NewInvitation,
        max_users: u64,
    ) -> Result<Invitation>;

    /// The invitation with this id, in any state.
    ///
    /// # Errors
    /// `NotFound` (entity `Invitation`).
    async fn get_invitation(&self, id: InvitationId) -> Result<Invitation>;

    /// A tenant's pending invitations (not accepted, revoked or expired), oldest first.
    async fn list_invitations(&self, tenant: TenantId) -> Result<Vec<Invitation>>;

    /// Revokes a pending invitation of `tenant`.
    ///
    /// # Errors
    /// `NotFound` (entity `Invitation`) when it is not a pending invitation of `tenant`.
    async fn revoke_invitation(&self, tenant: TenantId, id: InvitationId) -> Result<Invitation>;

    /// Accepts a pending invitation whose token digest is `digest`: creates its user (its
    /// e-mail and role, this password hash) and marks it accepted.
    ///
    /// # Errors
    /// `NotFound` (entity `Invitation`) alike for an unknown id, another digest, an expired,
    /// revoked or accepted invitation, or a tenant being deleted; `Conflict` (field `email`)
    /// when the tenant got a user with this e-mail meanwhile.
    async fn accept_invitation(
        &self,
        id: InvitationId,
        digest: &TokenDigest,
        password_hash: PasswordHash,
    ) -> Result<User>;

    /// A tenant's users plus its pending invitations: what the users quota counts.
    async fn count_seats(&self, tenant: TenantId) -> Result<u64>;

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
