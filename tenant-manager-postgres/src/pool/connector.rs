//! `PgTenantConnector`: routes tenants to Postgres pools and scopes shared connections.

use std::fmt;
use std::sync::Arc;

use sqlx::PgConnection;
use tenant_manager_core::pool::{ClusterBudget, PoolConfig, PoolKey, TenantConnector, TenantPools};
use tenant_manager_core::{DbLimits, Error, Isolation, PlanBook, Result, Secret, Tenant, TenantId};

use super::manager::PgConnectionManager;
use super::scope;
use crate::app_login::AppLogin;
use crate::credentials::WallKeys;
use crate::credentials::{TenantCredentials, tenant_role};
use crate::ident::Ident;
use crate::replicas::{PRIMARY_ROUTE, ReplicaPolicy, ReplicaRoutes, monitor};
use crate::servers::ServerMap;
use crate::wall::WallSession;

/// The pool engine over Postgres: `TenantPools` with [`PgTenantConnector`].
pub type PgTenantPools = TenantPools<PgTenantConnector>;

/// Default `application_name` of pooled connections.
pub const DEFAULT_APPLICATION_NAME: &str = "tenant-manager";

/// The login of pools shared by tenants, when it is not the server's admin login.
#[derive(Clone)]
struct SharedLogin {
    user: String,
    password: Secret,
    /// Schema checkouts `SET ROLE` to the tenant's role (the app login of a deployment
    /// without the wall).
    set_role: bool,
    /// The app login (which needs the wall), not a host's own shared login.
    user_is_app: bool,
}

/// Tells the pool engine how to reach each tenant's data on Postgres.
///
/// - [`Isolation::Database`]: a pool of the tenant alone, connected to
///   `placement.database` on `placement.server` as the tenant's own login role
///   (`tenant_<slug>`), with the password from [`TenantCredentials`].
/// - [`Isolation::Schema`] and [`Isolation::Shared`]: one pool per `server/database`, shared
///   by its tenants. Every checkout proves the tenant to the database's wall and sets
///   `search_path` to the tenant's quoted schema only (schema isolation) or leaves the default
///   (shared isolation), in one round trip. A connection its tenant returns settled outside
///   any transaction keeps the scope for that tenant's next checkout (tenant affinity, see
///   [`PoolConfig::scope_affinity`]), which then sends nothing; any other tenant's checkout
///   of it resets the session (settings, role, temporary objects, listeners, advisory locks,
///   the wall's verdict) and proves the new tenant in the same round trip. A connection
///   returned inside a transaction, whose prepared statements SQL changed, or whose reset
///   fails, is discarded.
///
/// # The login of shared pools
///
/// Use [`with_app_login`](Self::with_app_login) and [`with_wall`](Self::with_wall), the secure
/// path: shared pools log in as the unprivileged app login ([`crate::app_login`]), which is a
/// member of no tenant role and owns nothing; every table of a tenant schema and every shared
/// table admits only the rows of the session's *verified* tenant (forced row-level security
/// on the wall's verdict, see [`crate::wall`]). The verdict is written only by
/// `wall.enter()` given a proof the application computes with a key the app login cannot read,
/// bound to the backend and to a nonce; so SQL injected into tenant A's session (`SET ROLE`,
/// `set_config`, a replayed or forged proof, schema-qualified names) reads and changes
/// nothing of tenant B.
///
/// Without it, shared pools log in as the server map's admin login (a superuser bypasses
/// row-level security and reads every schema), or as
/// [`with_shared_login`](Self::with_shared_login)'s role.
///
/// Every connection carries `application_name` (default
/// [`DEFAULT_APPLICATION_NAME`]), so `pg_stat_activity` tells the pools' sessions apart.
///
/// # Read-only checkouts
///
/// [`TenantPools::acquire_read`] checkouts come from pools of their own, whose connections
/// start with `default_transaction_read_only=on`: on a streaming replica of the tenant's
/// server within the lag bounds ([`crate::replicas`]), else on the primary. They log in and are
/// scoped exactly as the read-write checkouts (the tenant's own role for database isolation,
/// the shared login with `search_path`, role and tenant setting otherwise), and count against
/// the same caps. Pools behind the wall ([`with_wall`](Self::with_wall)) read on the primary:
/// the wall's verdict is a row `wall.enter()` writes, which a hot standby cannot write (see
/// `docs/read-replicas.md`). On the primary, the read-only session refuses writes of SQL
/// that honours it; it is a guard against mistakes, not a wall: SQL that turns
/// `default_transaction_read_only` off again writes, within the tenant's scope.
#[derive(Clone)]
pub struct PgTenantConnector {
    servers: ServerMap,
    credentials: Arc<dyn TenantCredentials>,
    application_name: String,
    shared_login: Option<SharedLogin>,
    wall: Option<WallKeys>,
    plans: Option<PlanBook>,
    replica_policy: ReplicaPolicy,
    /// Set by [`into_pools`](Self::into_pools), which starts the lag monitor.
    replicas: Option<Arc<ReplicaRoutes>>,
}

impl PgTenantConnector {
    /// A connector over `servers`, with tenant passwords from `credentials`.
    pub fn new(servers: ServerMap, credentials: Arc<dyn TenantCredentials>) -> Self {
        Self {
            servers,
            credentials,
            application_name: DEFAULT_APPLICATION_NAME.to_owned(),
            shared_login: None,
            wall: None,
            plans: None,
            replica_policy: ReplicaPolicy::default(),
            replicas: None,
        }
    }

    /// Applies each schema or shared tenant's plan session limits ([`DbLimits`]:
    /// `statement_timeout`, `work_mem`) on every checkout that sets its scope, with
    /// `set_config`, from the tenant's quota override or else its plan in `plans` (read on
    /// every scope change, so a plan edit applies to the next one). The reset of a returned
    /// connection (`RESET ALL`), and the reset that precedes another tenant's scope, clear
    /// them: they never reach another tenant. Database tenants get theirs on their login role
    /// ([`PgRoleLimits`](crate::usage::PgRoleLimits)).
    #[must_use]
    pub fn with_plan_limits(mut self, plans: PlanBook) -> Self {
        self.plans = Some(plans);
        self
    }

    /// The session limits of `tenant`: its quota override's, else its plan's; none without
    /// [`with_plan_limits`](Self::with_plan_limits).
    fn limits_of(&self, tenant: &Tenant) -> DbLimits {
        match (&tenant.quota, &self.plans) {
            (_, None) => DbLimits::default(),
            (Some(quota), Some(_)) => quota.db,
            (None, Some(plans)) => plans.current().policy(&tenant.plan).db,
        }
    }

    /// Sets the lag bounds of the servers' read replicas and how often they are measured.
    #[must_use]
    pub fn with_replica_policy(mut self, policy: ReplicaPolicy) -> Self {
        self.replica_policy = policy;
        self
    }

    /// Measures every read replica now (the monitor also does, each interval). A no-op before
    /// [`into_pools`](Self::into_pools).
    pub async fn measure_replicas(&self) {
        if let Some(routes) = &self.replicas {
            monitor::measure_all(&self.servers, routes).await;
        }
    }

    /// The last measure of each replica of `server`, in order: its replay lag in bytes and
    /// whether it serves reads. Empty before [`into_pools`](Self::into_pools).
    pub fn replica_status(&self, server: &tenant_manager_core::ServerId) -> Vec<(u64, bool)> {
        self.replicas
            .as_ref()
            .map(|routes| routes.status(server))
            .unwrap_or_default()
    }

    /// Sets the `application_name` of every pooled connection.
    #[must_use]
    pub fn with_application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = name.into();
        self
    }

    /// Connects pools shared by tenants as the app login (created and granted by
    /// [`PostgresProvisioner::ensure_app_login`](crate::PostgresProvisioner::ensure_app_login)
    /// and provisioning). The recommended setting; replaces
    /// [`with_shared_login`](Self::with_shared_login). Needs [`with_wall`](Self::with_wall):
    /// every checkout proves its tenant to the database's wall ([`crate::wall`]).
    #[must_use]
    pub fn with_app_login(mut self, login: AppLogin) -> Self {
        self.shared_login = Some(SharedLogin {
            user: login.name().to_owned(),
            password: login.password().clone(),
            set_role: false,
            user_is_app: true,
        });
        self
    }

    /// Signs each checkout's tenant with `keys` for the databases' wall: a checkout enters the
    /// tenant's verified context (`wall.enter()`), which the wall's row-level policies admit,
    /// instead of setting a role or trusting a setting. The key must be valid in every
    /// database of schema and shared tenants ([`crate::wall::WallAdmin`]).
    #[must_use]
    pub fn with_wall(mut self, keys: WallKeys) -> Self {
        self.wall = Some(keys);
        self
    }

    /// Connects pools shared by tenants as the app login of a deployment without the wall
    /// (before `tenant-cli wall migrate`): each schema checkout `SET ROLE`s to the tenant's
    /// role, shared tenants are scoped by `app.tenant_id`. SQL injected into a session can
    /// undo both; use it only to compare with, or until the upgrade.
    #[must_use]
    pub fn with_app_login_without_wall(mut self, login: AppLogin) -> Self {
        self.shared_login = Some(SharedLogin {
            user: login.name().to_owned(),
            password: login.password().clone(),
            set_role: true,
            user_is_app: true,
        });
        self.wall = None;
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
            user_is_app: false,
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
            if !login.set_role && login.user_is_app && self.wall.is_none() {
                return Err(Error::invalid(
                    "wall_key",
                    "the app login needs the wall's key (PgTenantConnector::with_wall)",
                ));
            }
        }
        if self.servers.ids().next().is_none() {
            return Err(Error::invalid("servers", "must name at least one server"));
        }
        self.replica_policy.validate()
    }

    /// Validates the connector and builds the pool engine over it.
    ///
    /// # Errors
    /// As [`validate`](Self::validate) and [`TenantPools::new`].
    ///
    /// When a server lists read replicas, this also starts their lag monitor on the current
    /// tokio runtime; it stops when the engine is dropped.
    pub fn into_pools(self, config: PoolConfig) -> Result<PgTenantPools> {
        self.into_pools_with(config, None)
    }

    /// Like [`into_pools`](Self::into_pools), with every server's connections of all
    /// instances together held within `budget` ([`TenantPools::new_clustered`]).
    ///
    /// # Errors
    /// As [`into_pools`](Self::into_pools), and `InvalidInput` when the budget does not
    /// validate.
    pub fn into_clustered_pools(
        self,
        config: PoolConfig,
        budget: ClusterBudget,
    ) -> Result<PgTenantPools> {
        self.into_pools_with(config, Some(budget))
    }

    fn into_pools_with(
        mut self,
        config: PoolConfig,
        budget: Option<ClusterBudget>,
    ) -> Result<PgTenantPools> {
        self.validate()?;
        let routes = Arc::new(ReplicaRoutes::new(
            &self.servers,
            self.replica_policy.clone(),
        )?);
        let any_replica = self.servers.ids().any(|id| !routes.of(id).is_empty());
        self.replicas = Some(Arc::clone(&routes));
        let pools = match budget {
            Some(budget) => TenantPools::new_clustered(self, config, budget)?,
            None => TenantPools::new(self, config)?,
        };
        if any_replica {
            let servers = pools.connector().servers.clone();
            tokio::spawn(monitor::run(servers, Arc::downgrade(&routes)));
        }
        Ok(pools)
    }

    /// The route a pool key names: `None` for the read-write pools, else `primary` or a
    /// replica's `<server>.r<index>.<epoch>`.
    fn route(key: &PoolKey) -> Option<&str> {
        match key {
            PoolKey::Tenant(_) => None,
            PoolKey::TenantRoute(routed) => Some(&routed.route),
            PoolKey::Shared(name) => name.rsplit_once('@').map(|(_, route)| route),
        }
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
            .field("wall", &self.wall)
            .field("plan_limits", &self.plans.is_some())
            .field("replica_policy", &self.replica_policy)
            .finish()
    }
}

impl TenantConnector for PgTenantConnector {
    type Manager = PgConnectionManager;
    type Session = Option<WallSession>;

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
        let mut options = server
            .admin
            .clone()
            .database(database.as_str())
            .application_name(&self.application_name);
        if let Some(route) = Self::route(key) {
            options = options.options([("default_transaction_read_only", "on")]);
            if route != PRIMARY_ROUTE {
                let index = self
                    .replicas
                    .as_ref()
                    .and_then(|routes| routes.replica(&tenant.placement.server, route))
                    .map(|(index, _)| index)
                    .ok_or_else(|| Error::invalid("read_route", "unknown read replica"))?;
                let replica = server
                    .replicas
                    .get(index)
                    .ok_or_else(|| Error::invalid("read_route", "unknown read replica"))?;
                options = options
                    .host(replica.admin.get_host())
                    .port(replica.admin.get_port());
            }
        }
        let options = match (key, &self.shared_login) {
            (PoolKey::Tenant(_) | PoolKey::TenantRoute(_), _) => {
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

    async fn apply_scope(
        &self,
        conn: &mut PgConnection,
        session: &mut Option<WallSession>,
        tenant: &Tenant,
        carried: Option<TenantId>,
    ) -> Result<()> {
        let limits = self.limits_of(tenant);
        if let Some(keys) = &self.wall {
            return scope::apply_walled(conn, session, keys, tenant, carried.is_some(), &limits)
                .await;
        }
        if carried.is_some() {
            // Without the wall the scope is set with bound parameters: a round trip of its own.
            scope::reset(conn).await?;
        }
        let set_role = self.shared_login.as_ref().is_some_and(|l| l.set_role);
        let role = match tenant.isolation {
            Isolation::Schema if set_role => Some(tenant_role(tenant)?),
            _ => None,
        };
        scope::apply(conn, tenant, role.as_ref(), &limits).await
    }

    fn read_key(&self, tenant: &Tenant) -> Result<PoolKey> {
        let walled_shared = self.wall.is_some() && tenant.isolation != Isolation::Database;
        let route = match &self.replicas {
            // Behind the wall, a checkout writes the wall's verdict: only the primary can.
            Some(routes) if walled_shared => routes.to_primary(),
            Some(routes) => routes.pick(&tenant.placement.server),
            None => Arc::from(PRIMARY_ROUTE),
        };
        Ok(match tenant.isolation {
            Isolation::Database => PoolKey::tenant_route(tenant.id, route),
            Isolation::Schema | Isolation::Shared => PoolKey::Shared(Arc::from(format!(
                "{}/{}@{route}",
                tenant.placement.server, tenant.placement.database
            ))),
        })
    }

    fn read_unavailable(&self, key: &PoolKey, _error: &Error) -> bool {
        let Some(route) = Self::route(key).filter(|route| *route != PRIMARY_ROUTE) else {
            return false;
        };
        let Some(routes) = &self.replicas else {
            return false;
        };
        // Route names are unique across servers (`<server>.r<index>`): one replica is marked,
        // until the monitor's next good measure.
        let mut marked = false;
        for id in self.servers.ids() {
            if let Some((_, replica)) = routes.replica(id, route) {
                replica.set_available(false);
                marked = true;
            }
        }
        marked
    }

    fn keep_scope(&self, conn: &mut PgConnection, _session: &mut Option<WallSession>) -> bool {
        scope::may_keep(conn)
    }

    async fn reset_scope(
        &self,
        conn: &mut PgConnection,
        _session: &mut Option<WallSession>,
    ) -> Result<()> {
        scope::reset(conn).await
    }

    /// `Terminate`, then waits until the server closes its end of the socket, which it does
    /// only once the backend process has exited (and left `pg_stat_activity`); a failure to
    /// send means the socket is gone already.
    async fn close(&self, conn: PgConnection) {
        if let Err(error) = conn.close_and_wait_for_exit().await {
            tracing::debug!(%error, "closing a tenant connection: it was already broken");
        }
    }
}
