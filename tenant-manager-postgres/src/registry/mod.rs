//! `PostgresRegistry`: the system of record on the global database.
//!
//! Tables are prefixed `tm_` and created by [`migrate_global`] (embedded migrations, tracked
//! in their own table `tm_schema_migrations` so a host's migrations can share the database).
//! Lookups by id, slug, `lower(domain)` and e-mail hit unique indexes; status transitions are
//! compare-and-set updates decided by [`TenantStatus::can_transition_to`].

mod invitations;
mod plans;
mod rows;
pub(crate) use rows::{TenantRow, tenant_columns};
mod tenants;
mod users;

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;
use time::OffsetDateTime;

use tenant_manager_core::{
    Email, Entity, Error, Invitation, InvitationId, NewInvitation, NewTenant, NewUser, Page,
    PasswordHash, Plan, PlanCatalog, PlanStore, QuotaPolicy, Result, Role, ServerId, Tenant,
    TenantId, TenantQuery, TenantRegistry, TenantSlug, TenantStatus, TenantUpdate, TokenDigest,
    User, UserId, validate_domain, validate_status_reason,
};

use crate::pg::{SqlxResultExt, map_migrate};

/// The registry's own migrations, embedded at build time.
static GLOBAL_MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// Table that records which registry migrations ran (kept apart from a host's `_sqlx_migrations`).
pub const GLOBAL_MIGRATIONS_TABLE: &str = "tm_schema_migrations";

/// Creates or upgrades the registry tables on the global database. Safe to run from several
/// instances at once (the migrator takes an advisory lock) and on every deploy.
///
/// # Errors
/// `Unavailable` when the database cannot be reached; `Internal` when a migration fails or an
/// applied migration was changed.
pub async fn migrate_global(pool: &PgPool) -> Result<()> {
    let mut migrator = Migrator::with_migrations(GLOBAL_MIGRATIONS.iter().cloned().collect());
    migrator.dangerous_set_table_name(GLOBAL_MIGRATIONS_TABLE);
    migrator.run(pool).await.map_err(map_migrate)
}

/// The latest registry migration version this build knows.
pub fn global_schema_version() -> i64 {
    GLOBAL_MIGRATIONS
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap_or(0)
}

/// [`TenantRegistry`] on the global Postgres database.
#[derive(Clone)]
pub struct PostgresRegistry {
    pool: PgPool,
}

impl fmt::Debug for PostgresRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresRegistry")
            .field("pool_size", &self.pool.size())
            .finish_non_exhaustive()
    }
}

impl PostgresRegistry {
    /// A registry over an existing pool of the global database. Run [`migrate_global`] first.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Connects a pool of up to `max_connections` to the global database at `url`.
    ///
    /// # Errors
    /// `InvalidInput` (field `database_url`) for a URL that does not parse; `Unavailable` when
    /// the server cannot be reached.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self> {
        let options: sqlx::postgres::PgConnectOptions = url
            .parse()
            .map_err(|_| Error::invalid("database_url", "is not a valid postgres URL"))?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .connect_with(options)
            .await
            .map_db(Entity::Record)?;
        Ok(Self { pool })
    }

    /// The pool of the global database (shared with the provisioner, migrator and backups).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Creates or replaces the quota policy of a plan.
    ///
    /// # Errors
    /// `InvalidInput` for a policy out of range; `Unavailable` when the database cannot be reached.
    pub async fn put_plan(&self, plan: &Plan, policy: &QuotaPolicy) -> Result<()> {
        let mut conn = self.conn().await?;
        plans::put(&mut conn, plan, policy).await
    }

    /// Deletes a plan's stored policy; returns whether it existed.
    ///
    /// # Errors
    /// `Unavailable` when the database cannot be reached.
    pub async fn delete_plan(&self, plan: &Plan) -> Result<bool> {
        let mut conn = self.conn().await?;
        plans::delete(&mut conn, plan).await
    }

    /// The stored plans as a catalog whose unknown plans get `default`.
    ///
    /// # Errors
    /// `Unavailable` when the database cannot be reached; `Internal` for a corrupt row.
    pub async fn plan_catalog(&self, default: QuotaPolicy) -> Result<PlanCatalog> {
        let mut conn = self.conn().await?;
        plans::catalog(&mut conn, default).await
    }

    async fn conn(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>> {
        self.pool.acquire().await.map_db(Entity::Record)
    }
}

#[async_trait]
impl PlanStore for PostgresRegistry {
    async fn put_plan(&self, plan: &Plan, policy: &QuotaPolicy) -> Result<()> {
        PostgresRegistry::put_plan(self, plan, policy).await
    }

    async fn delete_plan(&self, plan: &Plan) -> Result<bool> {
        PostgresRegistry::delete_plan(self, plan).await
    }

    async fn list_plans(&self) -> Result<Vec<(Plan, QuotaPolicy)>> {
        let mut conn = self.conn().await?;
        plans::list(&mut conn).await
    }
}

fn check_new_tenant(tenant: &NewTenant) -> Result<()> {
    tenant.validate()
}

#[async_trait]
impl TenantRegistry for PostgresRegistry {
    async fn create_tenant(&self, tenant: NewTenant) -> Result<Tenant> {
        check_new_tenant(&tenant)?;
        let mut conn = self.conn().await?;
        tenants::insert(&mut conn, &tenant.into_tenant(OffsetDateTime::now_utc())).await
    }

    async fn create_tenant_with_owner(
        &self,
        tenant: NewTenant,
        owner: NewUser,
    ) -> Result<(Tenant, User)> {
        check_new_tenant(&tenant)?;
        if owner.tenant_id != tenant.id {
            return Err(Error::invalid(
                "tenant_id",
                "the owner must belong to the new tenant",
            ));
        }
        let mut tx = self.pool.begin().await.map_db(Entity::Tenant)?;
        users::claim_owner_email(&mut tx, &owner.email).await?;
        let tenant =
            tenants::insert(&mut tx, &tenant.into_tenant(OffsetDateTime::now_utc())).await?;
        let user = users::insert(&mut tx, owner).await?;
        tx.commit().await.map_db(Entity::Tenant)?;
        Ok((tenant, user))
    }

    async fn get_tenant(&self, id: TenantId) -> Result<Tenant> {
        let mut conn = self.conn().await?;
        tenants::by_id(&mut conn, id, false)
            .await?
            .ok_or_else(|| Error::not_found(Entity::Tenant, id))
    }

    async fn find_tenant_by_slug(&self, slug: &TenantSlug) -> Result<Option<Tenant>> {
        let mut conn = self.conn().await?;
        tenants::by_key(&mut conn, tenants::Key::Slug, slug.as_str()).await
    }

    async fn find_tenant_by_domain(&self, domain: &str) -> Result<Option<Tenant>> {
        let domain = domain.trim().to_ascii_lowercase();
        if validate_domain(&domain).is_err() {
            // No stored domain can match an invalid one.
            return Ok(None);
        }
        let mut conn = self.conn().await?;
        tenants::by_key(&mut conn, tenants::Key::Domain, &domain).await
    }

    async fn list_tenants(&self, query: &TenantQuery) -> Result<Page<Tenant>> {
        query.validate()?;
        let mut conn = self.conn().await?;
        tenants::list(&mut conn, query).await
    }

    async fn count_tenants(&self, status: Option<TenantStatus>) -> Result<u64> {
        let mut conn = self.conn().await?;
        tenants::count(&mut conn, status).await
    }

    async fn count_tenants_by_server(&self) -> Result<BTreeMap<ServerId, u64>> {
        let mut conn = self.conn().await?;
        tenants::count_by_server(&mut conn).await
    }

    async fn update_tenant(&self, id: TenantId, update: TenantUpdate) -> Result<Tenant> {
        update.validate()?;
        let mut tx = self.pool.begin().await.map_db(Entity::Tenant)?;
        let tenant = tenants::update(&mut tx, id, update).await?;
        tx.commit().await.map_db(Entity::Tenant)?;
        Ok(tenant)
    }

    async fn transition(
        &self,
        id: TenantId,
        to: TenantStatus,
        reason: Option<String>,
    ) -> Result<Tenant> {
        validate_status_reason(reason.as_deref())?;
        let mut conn = self.conn().await?;
        tenants::transition(&mut conn, id, to, reason).await
    }

    async fn purge_tenant(&self, id: TenantId) -> Result<()> {
        let mut conn = self.conn().await?;
        tenants::purge(&mut conn, id).await
    }

    async fn create_user(&self, user: NewUser) -> Result<User> {
        let mut conn = self.conn().await?;
        users::insert(&mut conn, user).await
    }

    async fn get_user(&self, id: UserId) -> Result<User> {
        let mut conn = self.conn().await?;
        users::by_id(&mut conn, id)
            .await?
            .ok_or_else(|| Error::not_found(Entity::User, id))
    }

    async fn find_user_by_email(&self, email: &Email) -> Result<Option<User>> {
        let mut conn = self.conn().await?;
        users::by_email(&mut conn, email).await
    }

    async fn find_users_by_email(&self, email: &Email) -> Result<Vec<User>> {
        let mut conn = self.conn().await?;
        users::all_by_email(&mut conn, email).await
    }

    async fn update_user_role(&self, tenant: TenantId, user: UserId, role: Role) -> Result<User> {
        let mut tx = self.pool.begin().await.map_db(Entity::User)?;
        let user = users::set_role(&mut tx, tenant, user, role).await?;
        tx.commit().await.map_db(Entity::User)?;
        Ok(user)
    }

    async fn delete_user(&self, tenant: TenantId, user: UserId) -> Result<User> {
        let mut tx = self.pool.begin().await.map_db(Entity::User)?;
        let user = users::delete(&mut tx, tenant, user).await?;
        tx.commit().await.map_db(Entity::User)?;
        Ok(user)
    }

    async fn create_invitation(
        &self,
        invitation: NewInvitation,
        max_users: u64,
    ) -> Result<Invitation> {
        let mut tx = self.pool.begin().await.map_db(Entity::Invitation)?;
        let invitation = invitations::insert(&mut tx, invitation, max_users).await?;
        tx.commit().await.map_db(Entity::Invitation)?;
        Ok(invitation)
    }

    async fn get_invitation(&self, id: InvitationId) -> Result<Invitation> {
        let mut conn = self.conn().await?;
        invitations::by_id(&mut conn, id).await
    }

    async fn list_invitations(&self, tenant: TenantId) -> Result<Vec<Invitation>> {
        let mut conn = self.conn().await?;
        invitations::pending(&mut conn, tenant).await
    }

    async fn revoke_invitation(&self, tenant: TenantId, id: InvitationId) -> Result<Invitation> {
        let mut conn = self.conn().await?;
        invitations::revoke(&mut conn, tenant, id).await
    }

    async fn accept_invitation(
        &self,
        id: InvitationId,
        digest: &TokenDigest,
        password_hash: PasswordHash,
    ) -> Result<User> {
        let mut tx = self.pool.begin().await.map_db(Entity::Invitation)?;
        let user = invitations::accept(&mut tx, id, digest, password_hash).await?;
        tx.commit().await.map_db(Entity::Invitation)?;
        Ok(user)
    }

    async fn count_seats(&self, tenant: TenantId) -> Result<u64> {
        let mut conn = self.conn().await?;
        invitations::seats(&mut conn, tenant).await
    }

    async fn list_users(&self, tenant: TenantId) -> Result<Vec<User>> {
        let mut conn = self.conn().await?;
        users::of_tenant(&mut conn, tenant).await
    }

    async fn replace_password_hash(
        &self,
        id: UserId,
        current: &PasswordHash,
        new: PasswordHash,
    ) -> Result<User> {
        let mut conn = self.conn().await?;
        if let Some(user) = users::replace_password_hash(&mut conn, id, current, &new).await? {
            return Ok(user);
        }
        match users::by_id(&mut conn, id).await? {
            Some(_) => Err(Error::conflict(
                Entity::User,
                "password_hash",
                "the password hash changed since it was read",
            )),
            None => Err(Error::not_found(Entity::User, id)),
        }
    }
}
