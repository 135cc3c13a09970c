//! A host's own `TenantRegistry` (the in-memory one behind an audit trail of the changes that
//! succeeded), proved by the registry conformance suite: a failing case panics, so the run
//! exits non-zero. `cargo run --example registry_adapter --features testing`

use std::sync::Mutex;

use tenant_manager::core::testing::registry;
use tenant_manager::memory::InMemoryRegistry;
use tenant_manager::{
    Email, NewTenant, NewUser, Page, PasswordHash, Result, Tenant, TenantId, TenantQuery,
    TenantRegistry, TenantSlug, TenantStatus, TenantUpdate, User, UserId, async_trait,
};

/// Delegates to an [`InMemoryRegistry`] and notes each change that succeeded.
#[derive(Debug, Default)]
struct AuditedRegistry {
    inner: InMemoryRegistry,
    trail: Mutex<Vec<&'static str>>,
}

impl AuditedRegistry {
    fn note<T>(&self, change: &'static str, result: Result<T>) -> Result<T> {
        if let (Ok(_), Ok(mut trail)) = (&result, self.trail.lock()) {
            trail.push(change);
        }
        result
    }
}

#[async_trait]
impl TenantRegistry for AuditedRegistry {
    async fn create_tenant(&self, t: NewTenant) -> Result<Tenant> {
        self.note("create tenant", self.inner.create_tenant(t).await)
    }
    async fn create_tenant_with_owner(&self, t: NewTenant, o: NewUser) -> Result<(Tenant, User)> {
        let created = self.inner.create_tenant_with_owner(t, o).await;
        self.note("create tenant and owner", created)
    }
    async fn get_tenant(&self, id: TenantId) -> Result<Tenant> {
        self.inner.get_tenant(id).await
    }
    async fn find_tenant_by_slug(&self, slug: &TenantSlug) -> Result<Option<Tenant>> {
        self.inner.find_tenant_by_slug(slug).await
    }
    async fn find_tenant_by_domain(&self, domain: &str) -> Result<Option<Tenant>> {
        self.inner.find_tenant_by_domain(domain).await
    }
    async fn list_tenants(&self, query: &TenantQuery) -> Result<Page<Tenant>> {
        self.inner.list_tenants(query).await
    }
    async fn count_tenants(&self, status: Option<TenantStatus>) -> Result<u64> {
        self.inner.count_tenants(status).await
    }
    async fn update_tenant(&self, id: TenantId, update: TenantUpdate) -> Result<Tenant> {
        self.note("update tenant", self.inner.update_tenant(id, update).await)
    }
    async fn transition(
        &self,
        id: TenantId,
        to: TenantStatus,
        why: Option<String>,
    ) -> Result<Tenant> {
        self.note("transition", self.inner.transition(id, to, why).await)
    }
    async fn purge_tenant(&self, id: TenantId) -> Result<()> {
        self.note("purge tenant", self.inner.purge_tenant(id).await)
    }
    async fn create_user(&self, user: NewUser) -> Result<User> {
        self.note("create user", self.inner.create_user(user).await)
    }
    async fn get_user(&self, id: UserId) -> Result<User> {
        self.inner.get_user(id).await
    }
    async fn find_user_by_email(&self, email: &Email) -> Result<Option<User>> {
        self.inner.find_user_by_email(email).await
    }
    async fn list_users(&self, tenant: TenantId) -> Result<Vec<User>> {
        self.inner.list_users(tenant).await
    }
    async fn find_users_by_email(&self, email: &Email) -> Result<Vec<User>> {
        self.inner.find_users_by_email(email).await
    }
    async fn update_user_role(
        &self,
        tenant: TenantId,
        user: UserId,
        role: tenant_manager::Role,
    ) -> Result<User> {
        self.inner.update_user_role(tenant, user, role).await
    }
    async fn delete_user(&self, tenant: TenantId, user: UserId) -> Result<User> {
        self.inner.delete_user(tenant, user).await
    }
    async fn create_invitation(
        &self,
        invitation: tenant_manager::NewInvitation,
        max_users: u64,
    ) -> Result<tenant_manager::Invitation> {
        self.inner.create_invitation(invitation, max_users).await
    }
    async fn get_invitation(
        &self,
        id: tenant_manager::InvitationId,
    ) -> Result<tenant_manager::Invitation> {
        self.inner.get_invitation(id).await
    }
    async fn list_invitations(&self, tenant: TenantId) -> Result<Vec<tenant_manager::Invitation>> {
        self.inner.list_invitations(tenant).await
    }
    async fn revoke_invitation(
        &self,
        tenant: TenantId,
        id: tenant_manager::InvitationId,
    ) -> Result<tenant_manager::Invitation> {
        self.inner.revoke_invitation(tenant, id).await
    }
    async fn accept_invitation(
        &self,
        id: tenant_manager::InvitationId,
        digest: &tenant_manager::TokenDigest,
        password_hash: PasswordHash,
    ) -> Result<User> {
        self.inner
            .accept_invitation(id, digest, password_hash)
            .await
    }
    async fn count_seats(&self, tenant: TenantId) -> Result<u64> {
        self.inner.count_seats(tenant).await
    }
    async fn replace_password_hash(
        &self,
        id: UserId,
        old: &PasswordHash,
        new: PasswordHash,
    ) -> Result<User> {
        let replaced = self.inner.replace_password_hash(id, old, new).await;
        self.note("replace password hash", replaced)
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let audited = AuditedRegistry::default();
    registry::run_all(&audited).await;
    let changes = audited.trail.lock().map(|t| t.len()).unwrap_or_default();
    println!("registry conformance suite passed ({changes} changes audited)");
}
