//! `TenantStorage`: where tenants' data lives and how it is shaped. The provisioner, the fleet
//! migrator and the backups share one, so they agree on every name.

use std::fmt;
use std::sync::Arc;

use sqlx::{PgConnection, PgPool};
use tenant_manager_core::{Error, Isolation, Result, ServerId, StorageNaming, Tenant};

use crate::app_login::app_login_name;
use crate::ident::{Ident, MAX_IDENT_LEN};
use crate::migrate::TenantMigrations;
use crate::provision::admin;
use crate::servers::ServerMap;
use crate::wall::WallKeys;

/// Names used by the provisioner besides the tenants' own.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StorageConfig {
    /// The deployment's storage prefix: it marks the shared databases this deployment may use
    /// (`COMMENT ON DATABASE ... IS 'tenant-manager:shared:<prefix>'`) and names the
    /// deployment's own objects by default (see [`StorageConfig::for_naming`]). Default `tm`.
    pub naming: StorageNaming,
    /// Create database-isolated tenants from a template database migrated once per version of
    /// the migration set (the fast path). Default `true`.
    pub use_template: bool,
    /// Prefix of template database names (`<prefix><digest>`). Default `tm_template_`.
    pub template_prefix: String,
    /// Role (no login) owning the objects of template databases; each new tenant database
    /// reassigns them to the tenant role. Default `tm_template_owner`.
    pub template_owner: String,
    /// Role (no login, not a superuser) owning the shared tables of [`Isolation::Shared`]
    /// tenants, so forced row-level security applies to it too. Default `tm_shared_owner`.
    pub shared_owner: String,
    /// Schema of the shared tables. Default `public`.
    pub shared_schema: String,
    /// The unprivileged login of pools shared by schema- and row-isolated tenants (see
    /// [`crate::app_login`]), or `None` to keep them on the admin login (not recommended:
    /// superusers bypass row-level security and read every schema). Provisioning grants it
    /// each schema tenant's role and the shared tables, creating it (`NOLOGIN`) when missing;
    /// [`crate::PostgresProvisioner::ensure_app_login`] gives it its password. A valid
    /// identifier not starting with `tenant_` or `pg_`. Default [`DEFAULT_APP_LOGIN`](crate::DEFAULT_APP_LOGIN)
    /// (`tm_app`).
    pub app_login: Option<String>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self::for_naming(StorageNaming::default())
    }
}

impl StorageConfig {
    /// The names of a deployment with this storage prefix: templates `<prefix>_template_*`
    /// owned by `<prefix>_template_owner`, shared tables owned by `<prefix>_shared_owner`, app
    /// login `<prefix>_app` (with the default prefix `tm`: `tm_template_*`, ...,
    /// [`DEFAULT_APP_LOGIN`](crate::DEFAULT_APP_LOGIN)).
    pub fn for_naming(naming: StorageNaming) -> Self {
        Self {
            use_template: true,
            template_prefix: naming.infra("template_"),
            template_owner: naming.infra("template_owner"),
            shared_owner: naming.infra("shared_owner"),
            shared_schema: "public".to_owned(),
            app_login: Some(naming.infra("app")),
            naming,
        }
    }

    /// Turns the template fast path on or off.
    #[must_use]
    pub fn with_template(mut self, use_template: bool) -> Self {
        self.use_template = use_template;
        self
    }

    /// Sets the template name prefix.
    #[must_use]
    pub fn with_template_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.template_prefix = prefix.into();
        self
    }

    /// Sets the template owner role.
    #[must_use]
    pub fn with_template_owner(mut self, role: impl Into<String>) -> Self {
        self.template_owner = role.into();
        self
    }

    /// Sets the owner role of the shared tables.
    #[must_use]
    pub fn with_shared_owner(mut self, role: impl Into<String>) -> Self {
        self.shared_owner = role.into();
        self
    }

    /// Sets the schema of the shared tables.
    #[must_use]
    pub fn with_shared_schema(mut self, schema: impl Into<String>) -> Self {
        self.shared_schema = schema.into();
        self
    }

    /// Sets the name of the app login.
    #[must_use]
    pub fn with_app_login(mut self, role: impl Into<String>) -> Self {
        self.app_login = Some(role.into());
        self
    }

    /// Grants nothing to an app login: pools shared by tenants stay on the admin login.
    #[must_use]
    pub fn without_app_login(mut self) -> Self {
        self.app_login = None;
        self
    }
}

/// The validated form of [`StorageConfig`].
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) config: StorageConfig,
    pub(crate) template_owner: Ident,
    pub(crate) shared_owner: Ident,
    pub(crate) shared_schema: Ident,
    pub(crate) app_login: Option<Ident>,
    /// Owner of the wall in databases of schema and shared tenants (`<prefix>_wall`).
    pub(crate) wall_owner: Ident,
}

impl Settings {
    fn new(config: StorageConfig) -> Result<Self> {
        // The template name is the prefix and 16 hex digits, with `_b` while it is built.
        if config.template_prefix.len() + 18 > MAX_IDENT_LEN {
            return Err(Error::invalid(
                "template_prefix",
                "must be at most 45 bytes",
            ));
        }
        Ident::new(&format!("{}x", config.template_prefix), "template_prefix")?;
        let template_owner = infra_name(&config, &config.template_owner, "template_owner")?;
        let shared_owner = infra_name(&config, &config.shared_owner, "shared_owner")?;
        let app_login = config
            .app_login
            .as_deref()
            .map(app_login_name)
            .transpose()?;
        if let Some(app) = &app_login {
            infra_name(&config, app.as_str(), "app_login")?;
        }
        if app_login
            .as_ref()
            .is_some_and(|a| *a == template_owner || *a == shared_owner)
        {
            return Err(Error::invalid(
                "app_login",
                "must differ from the template and shared owner roles",
            ));
        }
        let wall_owner = Ident::new(&config.naming.infra("wall"), "wall_owner")?;
        Ok(Self {
            template_owner,
            shared_owner,
            shared_schema: Ident::new(&config.shared_schema, "shared_schema")?,
            app_login,
            wall_owner,
            config,
        })
    }
}

/// Validates the name of one of the deployment's own roles: an identifier outside the
/// tenants' namespace (`<prefix>_t_*`).
fn infra_name(config: &StorageConfig, name: &str, field: &'static str) -> Result<Ident> {
    if config.naming.is_tenant_object(name) {
        return Err(Error::invalid(
            field,
            "must not be named like a tenant's object (<prefix>_t_*)",
        ));
    }
    Ident::new(name, field)
}

/// The validated names of one tenant's storage.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// Isolation mode.
    pub(crate) isolation: Isolation,
    /// Server of the placement.
    pub(crate) server: ServerId,
    /// The tenant's database (own or shared).
    pub(crate) database: Ident,
    /// The tenant's login role (database and schema isolation).
    pub(crate) role: Option<Ident>,
    /// The tenant's schema (schema isolation) or the shared tables' schema (shared isolation).
    pub(crate) schema: Option<Ident>,
}

/// Where tenants' data lives: the global database (registry, steps, catalogue), the server map,
/// the host's tenant migrations and the names of [`StorageConfig`].
#[derive(Clone)]
pub struct TenantStorage {
    pub(crate) global: PgPool,
    pub(crate) servers: ServerMap,
    pub(crate) migrations: TenantMigrations,
    pub(crate) settings: Arc<Settings>,
    pub(crate) wall: Option<WallKeys>,
}

/// What work on a walled database needs: the key proofs are signed with, the app login the
/// wall admits, the wall's owner role.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WallContext<'a> {
    /// The signing key.
    pub(crate) keys: &'a WallKeys,
    /// The app login.
    pub(crate) app: &'a Ident,
    /// The wall's owner role.
    pub(crate) owner: &'a Ident,
    /// `SECURITY DEFINER` functions the host's migrations may create.
    pub(crate) definers: &'a [String],
}

impl fmt::Debug for TenantStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantStorage")
            .field("servers", &self.servers)
            .field("migrations", &self.migrations)
            .field("config", &self.settings.config)
            .field("wall", &self.wall)
            .finish_non_exhaustive()
    }
}

impl TenantStorage {
    /// Describes the deployment. `global` is a pool of the global (registry) database, migrated
    /// with [`crate::migrate_global`]; the servers' admin connections must be able to create
    /// roles and databases.
    ///
    /// # Errors
    /// `InvalidInput` naming the first invalid name of `config`.
    pub fn new(
        global: PgPool,
        servers: ServerMap,
        migrations: TenantMigrations,
        config: StorageConfig,
    ) -> Result<Self> {
        Ok(Self {
            global,
            servers,
            migrations,
            settings: Arc::new(Settings::new(config)?),
            wall: None,
        })
    }

    /// The wall's key ([`crate::wall`]): needed whenever the storage has an app login, since
    /// every database of schema and shared tenants then carries the wall, and migrations,
    /// seeds and shared-row backups enter a tenant's verified context with it.
    #[must_use]
    pub fn with_wall(mut self, keys: WallKeys) -> Self {
        self.wall = Some(keys);
        self
    }

    /// The wall's key, if given.
    pub fn wall_keys(&self) -> Option<&WallKeys> {
        self.wall.as_ref()
    }

    /// The wall of this deployment's schema and shared databases: `None` without an app login
    /// (pools on the admin login have no wall).
    ///
    /// # Errors
    /// `InvalidInput` on `wall_key` when there is an app login but no key.
    pub(crate) fn wall(&self) -> Result<Option<WallContext<'_>>> {
        match (&self.settings.app_login, &self.wall) {
            (None, _) => Ok(None),
            (Some(app), Some(keys)) => Ok(Some(WallContext {
                keys,
                app,
                owner: &self.settings.wall_owner,
                definers: self.migrations.definer_functions(),
            })),
            (Some(_), None) => Err(Error::invalid(
                "wall_key",
                "a storage with an app login needs the wall's key (TenantStorage::with_wall)",
            )),
        }
    }

    /// The pool of the global database.
    pub fn global_pool(&self) -> &PgPool {
        &self.global
    }

    /// The server map.
    pub fn servers(&self) -> &ServerMap {
        &self.servers
    }

    /// The host's tenant migrations.
    pub fn migrations(&self) -> &TenantMigrations {
        &self.migrations
    }

    /// The configured names.
    pub fn config(&self) -> &StorageConfig {
        &self.settings.config
    }

    /// The validated names of a tenant's storage.
    pub(crate) fn target(&self, tenant: &Tenant) -> Result<Target> {
        self.servers.get(&tenant.placement.server)?;
        let database = Ident::new(&tenant.placement.database, "placement.database")?;
        let tenant_schema = || -> Result<Ident> {
            let schema = tenant.placement.schema.as_deref().ok_or_else(|| {
                Error::invalid("placement.schema", "schema isolation needs a schema")
            })?;
            Ident::new(schema, "placement.schema")
        };
        let role = || crate::credentials::tenant_role(tenant);
        let (role, schema) = match tenant.isolation {
            Isolation::Database => (Some(role()?), None),
            Isolation::Schema => (Some(role()?), Some(tenant_schema()?)),
            Isolation::Shared => (None, Some(self.settings.shared_schema.clone())),
        };
        Ok(Target {
            isolation: tenant.isolation,
            server: tenant.placement.server.clone(),
            database,
            role,
            schema,
        })
    }

    /// An admin connection to `database` on `server`.
    pub(crate) async fn connect(
        &self,
        server: &ServerId,
        database: &Ident,
    ) -> Result<PgConnection> {
        admin::connect(&self.servers.admin_options(server, database.as_str())?).await
    }

    /// An admin connection to `database` on `server`, `None` when the database does not exist.
    pub(crate) async fn connect_existing(
        &self,
        server: &ServerId,
        database: &Ident,
    ) -> Result<Option<PgConnection>> {
        admin::connect_existing(&self.servers.admin_options(server, database.as_str())?).await
    }

    /// An admin connection to a database shared by tenants, created (and marked as this
    /// deployment's) first if missing. A database marked as another deployment's, or not
    /// marked, is not used: `Conflict` on `placement.database`.
    pub(crate) async fn connect_shared(
        &self,
        server: &ServerId,
        database: &Ident,
    ) -> Result<PgConnection> {
        let conn = match self.connect_existing(server, database).await? {
            Some(conn) => conn,
            None => {
                let mut maintenance = self.connect_maintenance(server).await?;
                let created = admin::ensure_shared_database(
                    &mut maintenance,
                    database,
                    &self.shared_marker(),
                )
                .await;
                admin::close(maintenance).await;
                created?;
                self.connect(server, database).await?
            }
        };
        self.check_shared_marker(conn, database).await
    }

    /// The comment marking a shared database as this deployment's.
    pub(crate) fn shared_marker(&self) -> String {
        admin::shared_marker(&self.settings.config.naming)
    }

    /// Keeps `conn` (to `database`) when the database is marked as this deployment's.
    async fn check_shared_marker(
        &self,
        mut conn: PgConnection,
        database: &Ident,
    ) -> Result<PgConnection> {
        let checked = admin::current_database_comment(&mut conn).await;
        let ours = self.shared_marker();
        match checked {
            Ok(Some(comment)) if comment == ours => Ok(conn),
            Ok(comment) => {
                admin::close(conn).await;
                Err(admin::foreign_shared_database(database, comment.as_deref()))
            }
            Err(e) => {
                admin::close(conn).await;
                Err(e)
            }
        }
    }

    /// An admin connection to the server's maintenance database (that of its admin URL).
    pub(crate) async fn connect_maintenance(&self, server: &ServerId) -> Result<PgConnection> {
        admin::connect(&self.servers.get(server)?.admin).await
    }
}
