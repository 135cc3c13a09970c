//! Where the tenants live: the global Postgres database, the admin login, the registry and
//! app logins, and the names of the storage the provisioner creates.

use std::fmt;
use std::str::FromStr;

use sha2::Digest as _;
use tenant_manager::postgres::sqlx::postgres::PgConnectOptions;
use tenant_manager::{Secret, ServerId, ServerSpec, StorageNaming};

use super::env::EnvVars;
use super::pg_url::{PgShown, url_password};
use super::secrets::MIN_SECRET_LEN;
use super::servers::{self, TenantServer};
use crate::startup_error::ConfigError;

/// Default of `TENANT_STORAGE_PREFIX`.
const DEFAULT_STORAGE_PREFIX: &str = StorageNaming::DEFAULT_PREFIX;
/// Default of `GLOBAL_POOL_SIZE`.
const DEFAULT_GLOBAL_POOL_SIZE: u32 = 10;
/// Default of `WALL_KEY_ID`.
const DEFAULT_WALL_KEY_ID: i32 = 1;

/// Postgres settings. Without `GLOBAL_DATABASE_URL` the server runs embedded, in memory.
#[derive(Clone)]
#[non_exhaustive]
pub struct DatabaseConfig {
    /// The global (registry) database (`GLOBAL_DATABASE_URL`).
    pub global: Option<PgConnectOptions>,
    /// The login that creates tenant databases, roles and schemas: the global URL's
    /// login with `POSTGRES_ADMIN_USER`, `_PASSWORD`, `_HOST` and `_PORT` applied, on the
    /// maintenance database `postgres`.
    pub admin: Option<PgConnectOptions>,
    /// The admin login's password, kept apart for `pg_dump` / `pg_restore`, which get it
    /// through their environment (`POSTGRES_ADMIN_PASSWORD`, else the global URL's).
    pub admin_password: Option<Secret>,
    /// Master secret the tenants' database passwords are derived from (`TENANT_DB_SECRET`,
    /// at least 32 bytes; required in production with Postgres; in development derived from
    /// `GLOBAL_DATABASE_URL` when unset). Changing it changes every tenant role's password.
    pub tenant_secret: Option<Secret>,
    /// Most connections of the global database pool: registry, readiness probe, provisioning
    /// bookkeeping and backup catalogue (`GLOBAL_POOL_SIZE`, default 10). Tenant connections
    /// are counted apart, against `MAX_TOTAL_CONNECTIONS`.
    pub global_pool_size: u32,
    /// The database that holds schema- and row-isolated tenants on the server
    /// (`TENANT_SHARED_DATABASE`, default `<TENANT_STORAGE_PREFIX>_shared`).
    pub shared_database: String,
    /// Prefix of every cluster-wide name the provisioner creates (`TENANT_STORAGE_PREFIX`,
    /// default `tm`, 1 to 12 lowercase letters or digits, no `_`): tenants' databases, schemas
    /// and roles `<prefix>_t_<slug>`, template databases `<prefix>_template_<digest>`, the
    /// roles `<prefix>_template_owner` and `<prefix>_shared_owner`, and the marker of the
    /// shared databases, so deployments with different prefixes share a Postgres server.
    pub storage_prefix: String,
    /// The login of the registry's pool (`REGISTRY_DATABASE_URL`, on the global database):
    /// created or updated by `tenant-cli migrate global` and at start-up as the owner of the
    /// `tm_*` tables only (no `CREATEDB`, no `CREATEROLE`). Unset: the registry uses the
    /// global URL's login.
    pub registry: Option<PgConnectOptions>,
    /// The registry login's password, from `REGISTRY_DATABASE_URL`.
    pub registry_password: Option<Secret>,
    /// The unprivileged login of the pools shared by schema- and row-isolated tenants
    /// (`TENANT_APP_LOGIN`, default `<TENANT_STORAGE_PREFIX>_app`). The server creates it at
    /// start-up (no superuser, no `BYPASSRLS`, no inherited privileges), its password derived
    /// from `TENANT_DB_SECRET`, so Postgres itself keeps those tenants apart. Not `tenant_*`
    /// (tenants' roles) nor `pg_*`.
    pub app_login: String,
    /// Id of the key this instance signs its tenant proofs with (`WALL_KEY_ID`, default 1):
    /// the wall's key `N` is derived from `TENANT_DB_SECRET`, so a rotation changes only this
    /// number (`tenant-cli wall rotate-key --key-id N` first, see docs/operations.md).
    pub wall_key_id: i32,
    /// More Postgres servers for tenants (`TENANT_SERVERS`), besides the admin login's server
    /// (id `default`, unless the list names its own `default`). Empty: every tenant on the
    /// admin login's server, placed as before.
    pub servers: Vec<TenantServer>,
}

impl Default for DatabaseConfig {
    /// Embedded mode: no database; the default names for when one is set.
    fn default() -> Self {
        Self {
            global: None,
            admin: None,
            admin_password: None,
            tenant_secret: None,
            global_pool_size: DEFAULT_GLOBAL_POOL_SIZE,
            shared_database: shared_database_of(DEFAULT_STORAGE_PREFIX),
            storage_prefix: DEFAULT_STORAGE_PREFIX.to_owned(),
            registry: None,
            registry_password: None,
            app_login: app_login_of(DEFAULT_STORAGE_PREFIX),
            wall_key_id: DEFAULT_WALL_KEY_ID,
            servers: Vec::new(),
        }
    }
}

/// The default app login of a storage prefix: `<prefix>_app`.
fn app_login_of(prefix: &str) -> String {
    format!("{prefix}_app")
}

/// The default shared database of a storage prefix: `<prefix>_shared`.
fn shared_database_of(prefix: &str) -> String {
    format!("{prefix}_shared")
}

/// `REGISTRY_DATABASE_URL`: the registry login's connect options and password.
fn registry_login(
    vars: &EnvVars,
    global: &PgConnectOptions,
    prefix: &str,
) -> Result<(Option<PgConnectOptions>, Option<Secret>), ConfigError> {
    const VAR: &str = "REGISTRY_DATABASE_URL";
    let Some(url) = &vars.registry_database_url else {
        return Ok((None, None));
    };
    let options = parse_postgres_url(VAR, url)?;
    let user = options.get_username();
    let naming = StorageNaming::new(prefix).map_err(|e| ConfigError::new(VAR, e.to_string()))?;
    if user == global.get_username() || naming.is_tenant_object(user) || user.starts_with("tenant_")
    {
        return Err(ConfigError::new(
            VAR,
            "must name its own login (e.g. <TENANT_STORAGE_PREFIX>_registry), not the admin \
             login nor a tenant's role",
        ));
    }
    if options.get_database() != global.get_database() {
        return Err(ConfigError::new(
            VAR,
            "must point at the database of GLOBAL_DATABASE_URL",
        ));
    }
    let Some(password) = url_password(url.expose()) else {
        return Err(ConfigError::new(VAR, "must carry the login's password"));
    };
    Ok((Some(options), Some(password)))
}

/// `TENANT_APP_LOGIN`, defaulting to `<prefix>_app`.
fn app_login(vars: &EnvVars, prefix: &str) -> Result<String, ConfigError> {
    let name = vars
        .tenant_app_login
        .clone()
        .unwrap_or_else(|| app_login_of(prefix));
    if name.starts_with("tenant_")
        || name.starts_with("pg_")
        || name.starts_with(&format!("{prefix}_t_"))
    {
        return Err(ConfigError::new(
            "TENANT_APP_LOGIN",
            "must not start with tenant_ or <TENANT_STORAGE_PREFIX>_t_ (tenants' roles) or pg_ \
             (reserved by Postgres)",
        ));
    }
    Ok(name)
}

impl DatabaseConfig {
    /// Uses this global database, with its login as admin login.
    #[must_use]
    pub fn with_global(mut self, global: PgConnectOptions) -> Self {
        self.admin = Some(global.clone().database("postgres"));
        self.global = Some(global);
        self
    }

    /// Sets the admin login.
    #[must_use]
    pub fn with_admin(mut self, admin: PgConnectOptions) -> Self {
        self.admin = Some(admin);
        self
    }

    /// The validation pass of the Postgres variables: the admin login is the global URL's
    /// with `POSTGRES_ADMIN_*` applied; `TENANT_DB_SECRET` is required in production.
    pub(super) fn from_vars(
        vars: &EnvVars,
        production: bool,
        warnings: &mut Vec<String>,
    ) -> Result<Self, ConfigError> {
        // The guide calls these POSTGRES_HOST / POSTGRES_PORT; both spellings are read.
        let admin_host = vars
            .postgres_admin_host
            .as_ref()
            .or(vars.postgres_host.as_ref());
        let admin_port = vars.postgres_admin_port.or(vars.postgres_port);
        let prefix = &vars.tenant_storage_prefix;
        let names = Self {
            global_pool_size: vars.global_pool_size,
            shared_database: vars
                .tenant_shared_database
                .clone()
                .unwrap_or_else(|| shared_database_of(prefix)),
            app_login: app_login(vars, prefix)?,
            wall_key_id: vars.wall_key_id,
            storage_prefix: prefix.clone(),
            servers: servers::parse(vars.tenant_servers.as_ref())?,
            ..Self::default()
        };
        let Some(url) = &vars.global_database_url else {
            if vars.postgres_admin_user.is_some() || admin_host.is_some() {
                warnings.push(
                    "POSTGRES_ADMIN_* is set but GLOBAL_DATABASE_URL is not: running embedded, \
                     in memory"
                        .to_owned(),
                );
            }
            return Ok(names);
        };
        let global = parse_postgres_url("GLOBAL_DATABASE_URL", url)?;
        let mut admin = global.clone().database("postgres");
        if let Some(user) = &vars.postgres_admin_user {
            admin = admin.username(user);
        }
        if let Some(password) = &vars.postgres_admin_password {
            admin = admin.password(password.expose());
        }
        if let Some(host) = admin_host {
            admin = admin.host(host);
        }
        if let Some(port) = admin_port {
            admin = admin.port(port);
        }
        let tenant_secret = match &vars.tenant_db_secret {
            Some(secret) if secret.len() >= MIN_SECRET_LEN => secret.clone(),
            Some(_) => {
                return Err(ConfigError::new(
                    "TENANT_DB_SECRET",
                    "must be at least 32 bytes (generate one with `openssl rand -base64 32`)",
                ));
            }
            None if production => {
                return Err(ConfigError::new(
                    "TENANT_DB_SECRET",
                    "is required in production with GLOBAL_DATABASE_URL (generate one with \
                     `openssl rand -base64 32`)",
                ));
            }
            None => {
                warnings.push(
                    "TENANT_DB_SECRET is not set: tenant database passwords are derived from \
                     GLOBAL_DATABASE_URL (development only)"
                        .to_owned(),
                );
                derived_secret(url)
            }
        };
        let admin_password = vars
            .postgres_admin_password
            .clone()
            .or_else(|| url_password(url.expose()));
        let (registry, registry_password) = registry_login(vars, &global, prefix)?;
        Ok(Self {
            registry,
            registry_password,
            global: Some(global),
            admin: Some(admin),
            admin_password,
            tenant_secret: Some(tenant_secret),
            ..names
        })
    }
}

impl DatabaseConfig {
    /// Every Postgres server of tenants: the admin login's (`default`, unless the list names
    /// its own), then `TENANT_SERVERS`'s, in id order. Empty without `GLOBAL_DATABASE_URL`.
    pub fn tenant_servers(&self) -> Vec<TenantServer> {
        let mut all = self.servers.clone();
        let default = ServerId::default_server();
        if let Some(admin) = &self.admin
            && !all.iter().any(|s| s.spec.id == default)
        {
            all.push(TenantServer {
                spec: ServerSpec::new(default),
                admin: admin.clone(),
                admin_password: self.admin_password.clone(),
                budget: None,
                replicas: Vec::new(),
            });
        }
        all.sort_by(|a, b| a.spec.id.cmp(&b.spec.id));
        all
    }

    /// The placement policy's server list: empty when `TENANT_SERVERS` is unset (every
    /// tenant on `default`, as before), else every server of [`Self::tenant_servers`].
    pub fn placement_servers(&self) -> Vec<ServerSpec> {
        if self.servers.is_empty() {
            return Vec::new();
        }
        self.tenant_servers().into_iter().map(|s| s.spec).collect()
    }
}

/// A stable development secret: the SHA-256 of the global URL, hex.
fn derived_secret(url: &Secret) -> Secret {
    let digest = sha2::Sha256::digest(format!("tenant-db-secret:{}", url.expose()).as_bytes());
    Secret::new(hex::encode(digest))
}

/// A `postgres://` or `postgresql://` URL of `variable` (never quoted: it holds a password).
fn parse_postgres_url(
    variable: &'static str,
    url: &Secret,
) -> Result<PgConnectOptions, ConfigError> {
    let text = url.expose();
    if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
        return Err(ConfigError::new(
            variable,
            "must be a postgres:// or postgresql:// URL",
        ));
    }
    PgConnectOptions::from_str(text)
        .map_err(|_| ConfigError::new(variable, "is not a valid Postgres URL"))
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("global", &self.global.as_ref().map(PgShown))
            .field("registry", &self.registry.as_ref().map(PgShown))
            .field("registry_password", &self.registry_password)
            .field("admin", &self.admin.as_ref().map(PgShown))
            .field("admin_password", &self.admin_password)
            .field("tenant_secret", &self.tenant_secret)
            .field("global_pool_size", &self.global_pool_size)
            .field("shared_database", &self.shared_database)
            .field("storage_prefix", &self.storage_prefix)
            .field("app_login", &self.app_login)
            .field("wall_key_id", &self.wall_key_id)
            .field("servers", &self.servers)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// The database settings of these variables (development), and the warnings.
    fn load_warned(
        pairs: Vec<(&'static str, &'static str)>,
    ) -> Result<(DatabaseConfig, Vec<String>), ConfigError> {
        Config::from_lookup(move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
        .map(|config| (config.database, config.warnings))
    }

    fn load(pairs: Vec<(&'static str, &'static str)>) -> Result<DatabaseConfig, ConfigError> {
        load_warned(pairs).map(|(database, _)| database)
    }

    #[test]
    fn admin_login_defaults_to_the_global_url_and_takes_overrides() {
        let db = load(vec![
            (
                "GLOBAL_DATABASE_URL",
                "postgres://app:pw@db:5433/twenty_global",
            ),
            ("POSTGRES_ADMIN_USER", "root"),
            ("POSTGRES_HOST", "admin-host"),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let admin = db.admin.as_ref().map(|a| {
            (
                a.get_username().to_owned(),
                a.get_host().to_owned(),
                a.get_port(),
            )
        });
        assert_eq!(admin, Some(("root".into(), "admin-host".into(), 5433)));
        let shown = format!("{db:?}");
        assert!(shown.contains("twenty_global") && !shown.contains("pw"));
    }

    #[test]
    fn the_admin_password_comes_from_its_variable_or_the_url() {
        assert_eq!(
            url_password("postgres://u:p%40ss@h:5432/d")
                .map(|s| s.expose().to_owned())
                .as_deref(),
            Some("p@ss")
        );
        assert!(url_password("postgres://u@h/d").is_none());
        let db = load(vec![
            ("GLOBAL_DATABASE_URL", "postgres://app:pw@db/g"),
            ("POSTGRES_ADMIN_PASSWORD", "admin"),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            db.admin_password.map(|s| s.expose().to_owned()).as_deref(),
            Some("admin")
        );
    }

    #[test]
    fn bad_urls_name_their_variable() {
        let err = load(vec![("GLOBAL_DATABASE_URL", "mysql://x")]).err();
        assert_eq!(err.map(|e| e.variable), Some("GLOBAL_DATABASE_URL"));
        let err = load(vec![("POSTGRES_ADMIN_PORT", "99999")]).err();
        assert_eq!(err.map(|e| e.variable), Some("POSTGRES_ADMIN_PORT"));
    }

    #[test]
    fn storage_names_and_the_global_pool_are_configurable() {
        let db = load(vec![]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (
                db.shared_database.as_str(),
                db.storage_prefix.as_str(),
                db.global_pool_size
            ),
            ("tm_shared", "tm", 10)
        );
        let db = load(vec![
            ("GLOBAL_DATABASE_URL", "postgres://app@db/g"),
            ("TENANT_SHARED_DATABASE", "crm_shared"),
            ("TENANT_STORAGE_PREFIX", "crm"),
            ("GLOBAL_POOL_SIZE", "3"),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (
                db.shared_database.as_str(),
                db.storage_prefix.as_str(),
                db.global_pool_size
            ),
            ("crm_shared", "crm", 3)
        );
        for (name, value) in [
            ("TENANT_SHARED_DATABASE", "Shared"),
            ("TENANT_STORAGE_PREFIX", "a_prefix_longer_than_24_bytes"),
            ("TENANT_STORAGE_PREFIX", "tm_e2e"),
            ("TENANT_STORAGE_PREFIX", "abcdefghijklm"),
            ("TENANT_STORAGE_PREFIX", "tenant"),
            ("GLOBAL_POOL_SIZE", "0"),
            ("TENANT_APP_LOGIN", "tenant_app"),
            ("TENANT_APP_LOGIN", "pg_app"),
            ("TENANT_APP_LOGIN", "tm_t_app"),
            ("TENANT_APP_LOGIN", "App"),
            ("WALL_KEY_ID", "0"),
            ("WALL_KEY_ID", "-1"),
            ("WALL_KEY_ID", "2147483648"),
            ("WALL_KEY_ID", "one"),
        ] {
            let err = load(vec![(name, value)]);
            assert_eq!(err.err().map(|e| e.variable), Some(name));
        }
    }

    #[test]
    fn the_registry_login_is_its_own_login_on_the_global_database() {
        let global = ("GLOBAL_DATABASE_URL", "postgres://admin:pw@db/g");
        let db = load(vec![
            global,
            (
                "REGISTRY_DATABASE_URL",
                "postgres://tm_registry:s3cret@db/g",
            ),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            db.registry.as_ref().map(|r| r.get_username().to_owned()),
            Some("tm_registry".to_owned())
        );
        assert!(db.registry_password.is_some());
        assert!(!format!("{db:?}").contains("s3cret"));
        for bad in [
            "postgres://admin:pw@db/g",
            "postgres://tm_t_acme:pw@db/g",
            "postgres://tm_registry:pw@db/other",
            "postgres://tm_registry@db/g",
            "mysql://tm_registry:pw@db/g",
        ] {
            let err = load(vec![global, ("REGISTRY_DATABASE_URL", bad)]).err();
            assert_eq!(
                err.map(|e| e.variable),
                Some("REGISTRY_DATABASE_URL"),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_wall_key_id_defaults_to_one() {
        let db = load(vec![]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(db.wall_key_id, 1);
        let db = load(vec![("WALL_KEY_ID", "7")]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(db.wall_key_id, 7);
    }

    #[test]
    fn the_shared_database_follows_the_storage_prefix_unless_set() {
        let db = load(vec![("TENANT_STORAGE_PREFIX", "crm")]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(db.shared_database, "crm_shared");
    }

    #[test]
    fn the_app_login_follows_the_storage_prefix_unless_set() {
        let db = load(vec![]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(db.app_login, "tm_app");
        let db = load(vec![("TENANT_STORAGE_PREFIX", "crm")]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(db.app_login, "crm_app");
        let db = load(vec![
            ("TENANT_STORAGE_PREFIX", "crm"),
            ("TENANT_APP_LOGIN", "crm_web"),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(db.app_login, "crm_web");
    }

    #[test]
    fn without_a_database_url_the_server_is_embedded() {
        let loaded = load_warned(vec![("POSTGRES_ADMIN_USER", "root")]);
        let (db, warnings) = loaded.unwrap_or_else(|e| panic!("{e}"));
        assert!(db.global.is_none() && db.admin.is_none());
        assert_eq!(warnings.len(), 1);
    }
}
