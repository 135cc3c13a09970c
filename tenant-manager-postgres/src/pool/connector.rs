//! `PgTenantConnector`: routes tenants to Postgres pools and scopes shared connections.

use std::fmt;
use std::sync::Arc;

use sqlx::PgConnection;
use tenant_manager_core::pool::{PoolConfig, PoolKey, TenantConnector, TenantPools};
use tenant_manager_core::{Error, Isolation, Result, Secret, Tenant};

use super::manager::PgConnectionManager;
use super::scope;
use crate::app_login::AppLogin;
use crate::credentials::{TenantCredentials, tenant_role};
use crate::ident::Ident;
use crate::servers::ServerMap;

/// The pool engine over Postgres: `TenantPools` with [`PgTenantConnector`].
pub type PgTenantPools = TenantPools<PgTenantConnector>;

/// Default `application_name` of pooled connections.
pub const DEFAULT_APPLICATION_NAME: &str = "tenant-manager";

/// The login of pools shared by tenants, when it is not the server's admin login.
#[derive(Clone)]
struct SharedLogin {
    user: String,
    password: Secret,
    /// Schema checkouts `SET ROLE` to the tenant's role (the app login, which inherits
    /// nothing, reaches a schema only so).
    set_role: bool,
}

/// Tells the pool engine how to reach each tenant's data on Postgres.
///
/// - [`Isolation::Database`]: a pool of the tenant alone, connected to
///   `placement.database` on `placement.server` as the tenant's own login role
///   (`tenant_<slug>`), with the password from [`TenantCredentials`].
/// - [`Isolation::Schema`] and [`Isolation::Shared`]: one pool per `server/database`, shared
///   by its tenants. Every checkout sets `search_path` to the tenant's quoted schema only
///   (schema isolation) or to the default (shared isolation), and `app.tenant_id` to the
///   tenant's id, in one round trip. Every return resets the session (settings, role,
///   temporary tables, listeners, advisory locks) in one round trip; a connection returned
///   inside a transaction, or whose reset fails, is discarded.
///
/// # The login of shared pools
///
/// Use [`with_app_login`](Self::with_app_login), the secure path: shared pools log in as the
/// unprivileged app login ([`crate::app_login`]), a schema checkout also runs `SET ROLE` to the
/// tenant's role (in the same round trip), and Postgres itself keeps tenants apart: a schema
/// tenant's session has exactly its role's privileges (another tenant's schema answers
/// `42501`), a shared tenant's session is bound by forced row-level security. This guards
/// against the application's mistakes (a missing `WHERE tenant_id`, a schema-qualified name),
/// not against SQL injected into a session: such SQL can `SET ROLE` to any role the app login
/// is a member of, or set `app.tenant_id`.
///
/// Without it, shared pools log in as the server map's admin login (a superuser bypasses
/// row-level security and reads every schema), or as
/// [`with_shared_login`](Self::with_shared_login)'s role.
///
/// Every connection carries `application_name` (default
/// [`DEFAULT_APPLICATION_NAME`]), so `pg_stat_activity` tells the pools' sessions apart.
#[derive(Clone)]
pub struct PgTenantConnector {
    servers: ServerMap,
    credentials: Arc<dyn TenantCredentials>,
    application_name: String,
    shared_login: Option<SharedLogin>,
}

impl PgTenantConnector {
    /// A connector over `servers`, with tenant passwords from `credentials`.
    pub fn new(servers: ServerMap, credentials: Arc<dyn TenantCredentials>) -> Self {
        Self {
            servers,
            credentials,
            application_name: DEFAULT_APPLICATION_NAME.to_owned(),
            shared_login: None,
        }
    }

    /// Sets the `application_name` of every pooled connection.
    #[must_use]
    pub fn with_application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = name.into();
        self
    }

    /// Connects pools shared by tenants as the app login (created and granted by
    /// [`PostgresProvisioner::ensure_app_login`](crate::PostgresProvisioner::ensure_app_login)
    /// and provisioning), and `SET ROLE`s each schema checkout to the tenant's role. The
    /// recommended setting; replaces [`with_shared_login`](Self::with_shared_login).
    #[must_use]
    pub fn with_app_login(mut self, login: AppLogin) -> Self {
        self.shared_login = Some(SharedLogin {
            user: login.name().to_owned(),
            password: login.password().clone(),
            set_role: true,
        });
        self
    }

    /// Connects pools shared by tenants as `user` instead of the server's admin login, with no
    /// `SET ROLE` on checkout. Use an unprivileged role: row-level security does not apply to
    /// superusers and table owners. Prefer [`with_app_login`](Self::with_app_login).
    #[must_use]
    pub fn with_shared_login(mut self, user: impl Into<String>, password: Secret) -> Self {
        self.shared_login = Some(SharedLogin {
            user: user.into(),
            password,
            set_role: false,
        });
        self
    }

    /// The `application_name` of pooled connections.
    pub fn application_name(&self) -> &str {
        &self.application_name
    }

    /// Checks the settings: `application_name` is 1 to 63 printable ASCII characters, the
    /// shared login (if any) a valid role name, and the server map not empty.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the first bad setting.
    pub fn validate(&self) -> Result<()> {
        let name = &self.application_name;
        if name.is_empty()
            || name.len() > 63
            || !name.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        {
            return Err(Error::invalid(
                "application_name",
                "must be 1 to 63 printable ASCII characters",
            ));
        }
        if let Some(login) = &self.shared_login {
            Ident::new(&login.user, "shared_login")?;
        }
        if self.servers.ids().next().is_none() {
            return Err(Error::invalid("servers", "must name at least one server"));
        }
        Ok(())
    }

    /// Validates the connector and builds the pool engine over it.
    ///
    /// # Errors
    /// As [`validate`](Self::validate) and [`TenantPools::new`].
    pub fn into_pools(self, config: PoolConfig) -> Result<PgTenantPools> {
        self.validate()?;
        TenantPools::new(self, config)
    }
}

impl fmt::Debug for PgTenantConnector {
    /// Servers (host, port, user), credentials source (redacted), application name and the
    /// shared login's user; never a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTenantConnector")
            .field("servers", &self.servers)
            .field("credentials", &self.credentials)
            .field("application_name", &self.application_name)
            .field("shared_login", &self.shared_login.as_ref().map(|l| &l.user))
            .field(
                "set_role",
                &self.shared_login.as_ref().is_some_and(|l| l.set_role),
            )
            .finish()
    }
}

impl TenantConnector for PgTenantConnector {
    type Manager = PgConnectionManager;

    fn pool_key(&self, tenant: &Tenant) -> Result<PoolKey> {
        Ok(match tenant.isolation {
            Isolation::Database => PoolKey::Tenant(tenant.id),
            Isolation::Schema | Isolation::Shared => PoolKey::Shared(Arc::from(format!(
                "{}/{}",
                tenant.placement.server, tenant.placement.database
            ))),
        })
    }

    async fn manager(&self, tenant: &Tenant, key: &PoolKey) -> Result<PgConnectionManager> {
        let server = self.servers.get(&tenant.placement.server)?;
        let database = Ident::new(&tenant.placement.database, "placement.database")?;
        let options = server
            .admin
            .clone()
            .database(database.as_str())
            .application_name(&self.application_name);
        let options = match (key, &self.shared_login) {
            (PoolKey::Tenant(_), _) => {
                let role = tenant_role(tenant)?;
                let password = self.credentials.password(tenant).await?;
                options.username(role.as_str()).password(password.expose())
            }
            (PoolKey::Shared(_), Some(login)) => options
                .username(&login.user)
                .password(login.password.expose()),
            (PoolKey::Shared(_), None) => options,
        };
        Ok(PgConnectionManager::new(options))
    }

    async fn apply_scope(&self, conn: &mut PgConnection, tenant: &Tenant) -> Result<()> {
        let set_role = self.shared_login.as_ref().is_some_and(|l| l.set_role);
        let role = match tenant.isolation {
            Isolation::Schema if set_role => Some(tenant_role(tenant)?),
            _ => None,
        };
        scope::apply(conn, tenant, role.as_ref()).await
    }

    async fn reset_scope(&self, conn: &mut PgConnection) -> Result<()> {
        scope::reset(conn).await
    }
}
