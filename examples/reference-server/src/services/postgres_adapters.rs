//! The Postgres adapters (stores) of Postgres mode: the global registry, provisioning of tenant storage with the server's CRM
//! migrations, the pool manager of tenant connections, fleet migrations and pg_dump backups.
//!
//! Pools shared by schema- and row-isolated tenants log in as the app login
//! (`TENANT_APP_LOGIN`): no superuser, no `BYPASSRLS`, no inherited privileges, a member of
//! no tenant role. Every checkout proves its tenant to the database's wall with the key
//! `WALL_KEY_ID` derived from `TENANT_DB_SECRET`, and the wall's row-level policies admit
//! only that tenant's rows: Postgres itself keeps those tenants apart, also from SQL injected
//! into a tenant's session.

use std::sync::Arc;

use sqlx::migrate::{Migration, Migrator};
use sqlx::postgres::PgPoolOptions;
use tenant_manager::BackupStore;
use tenant_manager::manager::{PoolCloser, TenantManager};
use tenant_manager::pool::PoolConfig;
use tenant_manager::postgres::usage::{PgRoleLimits, PgStorageMeter};
use tenant_manager::postgres::{
    AppLogin, AppLoginReport, BackupConfig, DerivedCredentials, DriftChecker, PgDumpBackup,
    PgTenantConnector, PgTenantPools, PostgresProvisioner, PostgresRegistry, RegistryLogin,
    RegistryLoginReport, ReplicaPolicy, ServerMap, SharedClaimReport, StorageConfig,
    TenantMigrations, TenantMigrator, TenantStorage, WallAdmin, WallKeys, ensure_registry_login,
    migrate_global,
};
use tenant_manager::{ConnectionLeases, Error, PlanBook, Result, StorageNaming};

use super::{Shared, hasher, manager_config, plans, tokens};
use crate::config::Config;

/// The CRM migrations of database- and schema-isolated tenants (the `companies` table).
static ISOLATED: Migrator = sqlx::migrate!("./migrations/tenant");
/// The CRM migrations of the shared, row-level secured tables.
static SHARED: Migrator = sqlx::migrate!("./migrations/shared");

/// `application_name` of the pooled tenant connections, as `pg_stat_activity` shows it.
const APPLICATION_NAME: &str = "reference-server";

/// The Postgres adapters, connected and with the global database migrated.
#[derive(Debug, Clone)]
pub(crate) struct PostgresAdapters {
    pub(crate) registry: Arc<PostgresRegistry>,
    pub(crate) storage: TenantStorage,
    pub(crate) provisioner: Arc<PostgresProvisioner>,
    credentials: Arc<DerivedCredentials>,
    /// The login of the pools shared by tenants, its password derived from `TENANT_DB_SECRET`.
    app_login: AppLogin,
    /// The wall's signing key `WALL_KEY_ID`, derived from `TENANT_DB_SECRET`.
    wall_keys: WallKeys,
}

impl PostgresAdapters {
    /// Connects to the global database and applies its pending migrations.
    ///
    /// # Errors
    /// `InvalidInput` for missing settings; `Unavailable` when Postgres cannot be reached;
    /// `Internal` when a migration fails.
    pub(crate) async fn connect(config: &Config) -> Result<Self> {
        let db = &config.database;
        let (Some(global), Some(admin), Some(secret)) = (&db.global, &db.admin, &db.tenant_secret)
        else {
            return Err(Error::invalid(
                "GLOBAL_DATABASE_URL",
                "is required for the Postgres adapters",
            ));
        };
        let pool = PgPoolOptions::new()
            .max_connections(db.global_pool_size)
            .connect_with(global.clone())
            .await
            .map_err(|e| Error::unavailable("postgres", e))?;
        migrate_global(&pool).await?;
        let registry_pool = match registry_login(config)? {
            Some((login, options)) => {
                ensure_registry_login(&pool, &login).await?;
                PgPoolOptions::new()
                    .max_connections(db.global_pool_size)
                    .connect_with(options.clone())
                    .await
                    .map_err(|e| Error::unavailable("postgres", e))?
            }
            None => pool.clone(),
        };
        let servers = server_map(config, admin);
        let migrations = TenantMigrations::new(&ISOLATED).with_shared(&SHARED);
        let wall_keys = WallKeys::derived(secret, db.wall_key_id)?;
        let storage =
            TenantStorage::new(pool.clone(), servers, migrations, storage_names(config)?)?
                .with_wall(wall_keys.clone());
        let credentials = Arc::new(DerivedCredentials::new(secret.clone())?);
        let app_login = AppLogin::derived(&db.app_login, secret)?;
        let provisioner = Arc::new(PostgresProvisioner::new(
            storage.clone(),
            credentials.clone(),
        ));
        Ok(Self {
            registry: Arc::new(PostgresRegistry::new(registry_pool)),
            storage,
            provisioner,
            credentials,
            app_login,
            wall_keys,
        })
    }

    /// Creates the app login (or brings it up to date) and grants it what the tenants
    /// provisioned so far need: idempotent, run before the pools connect.
    ///
    /// # Errors
    /// `Conflict` when a role of that name exists that tenant-manager did not create;
    /// `Unavailable` when Postgres cannot be reached.
    pub(crate) async fn ensure_app_login(&self) -> Result<AppLoginReport> {
        let report = self.provisioner.ensure_app_login(&self.app_login).await?;
        tracing::info!(
            app_login = self.app_login.name(),
            servers = report.servers,
            databases = report.databases,
            "app login ready"
        );
        Ok(report)
    }

    /// The wall of the deployment's schema and shared databases (`tenant-cli wall ...`).
    ///
    /// # Errors
    /// `InvalidInput` when the storage has no app login.
    pub(crate) fn wall(&self) -> Result<WallAdmin> {
        WallAdmin::new(self.storage.clone())
    }

    /// The wall key `key_id` derived from `TENANT_DB_SECRET` (a rotation's new key).
    ///
    /// # Errors
    /// `InvalidInput` on `wall_key_id` below 1.
    pub(crate) fn wall_key(&self, config: &Config, key_id: i32) -> Result<WallKeys> {
        let secret = config.database.tenant_secret.as_ref().ok_or_else(|| {
            Error::invalid("TENANT_DB_SECRET", "is required for the Postgres adapters")
        })?;
        WallKeys::derived(secret, key_id)
    }

    /// The start-up check of the wall: every database of schema and shared tenants has it
    /// installed and accepts this instance's signing key. Returns the problems, one line each
    /// (none on a fresh deployment).
    ///
    /// # Errors
    /// `Unavailable` when a database cannot be reached.
    pub(crate) async fn wall_problems(&self) -> Result<Vec<String>> {
        self.wall()?.ready().await
    }

    /// Creates or updates the registry login of `REGISTRY_DATABASE_URL` (owner of the `tm_*`
    /// tables only); `None` when it is not configured.
    ///
    /// # Errors
    /// `Conflict` when a role of that name exists that tenant-manager did not create.
    pub(crate) async fn ensure_registry_login(
        &self,
        config: &Config,
    ) -> Result<Option<RegistryLoginReport>> {
        match registry_login(config)? {
            Some((login, _)) => Ok(Some(
                ensure_registry_login(self.storage.global_pool(), &login).await?,
            )),
            None => Ok(None),
        }
    }

    /// Marks legacy shared databases (of versions before storage prefixes) that hold only
    /// this deployment's tenants as this deployment's (`tenant-cli migrate claim-shared`).
    ///
    /// # Errors
    /// `Unavailable` when Postgres cannot be reached.
    pub(crate) async fn claim_shared(&self, config: &Config) -> Result<SharedClaimReport> {
        self.storage
            .claim_legacy_shared_databases(&[config.database.shared_database.as_str()])
            .await
    }

    /// The pool manager of tenant connections, within `MAX_TOTAL_CONNECTIONS` and
    /// `MAX_CONNECTIONS_PER_TENANT`: database-isolated tenants connect as their own role,
    /// schema- and row-isolated tenants share a pool per database logged in as the app login,
    /// scoped on each checkout by a proof of the tenant signed with the wall key, and by the
    /// session limits of its plan in `plans`.
    ///
    /// Call it after the metrics recorder is installed: the engine registers its series.
    ///
    /// # Errors
    /// `InvalidInput` when the caps or timeouts do not validate.
    pub(crate) fn pools(
        &self,
        config: &Config,
        plans: &PlanBook,
        leases: Arc<dyn ConnectionLeases>,
    ) -> Result<PgTenantPools> {
        let settings = &config.pool;
        let connector =
            PgTenantConnector::new(self.storage.servers().clone(), self.credentials.clone())
                .with_application_name(APPLICATION_NAME)
                .with_app_login(self.app_login.clone())
                .with_wall(self.wall_keys.clone())
                .with_plan_limits(plans.clone())
                .with_replica_policy(
                    ReplicaPolicy::default()
                        .with_max_lag_bytes(settings.replica_max_lag_bytes)
                        .with_max_lag(settings.replica_max_lag),
                );
        let pool_config = PoolConfig::default()
            .with_max_total(settings.max_total)
            .with_max_per_tenant(settings.max_per_tenant)
            .with_idle_timeout(settings.idle_timeout)
            .with_acquire_timeout(settings.acquire_timeout)
            .with_scope_affinity(settings.scope_affinity);
        match super::cluster_budget::budget(config, leases) {
            Some(budget) => connector.into_clustered_pools(pool_config, budget),
            None => connector.into_pools(pool_config),
        }
    }

    /// Backups with `pg_dump` into `store`.
    pub(crate) fn backup(&self, store: Arc<dyn BackupStore>) -> Arc<PgDumpBackup> {
        Arc::new(PgDumpBackup::new(
            self.storage.clone(),
            store,
            BackupConfig::default(),
        ))
    }

    /// The plan book: the default policy with the registry's plans on top.
    ///
    /// # Errors
    /// `Unavailable` when the registry cannot be reached; `Internal` for a corrupt plan row.
    pub(crate) async fn plan_book(&self, config: &Config) -> Result<PlanBook> {
        Ok(PlanBook::new(
            plans::load(config, self.registry.as_ref()).await?,
        ))
    }

    /// The storage meter of the tenants.
    pub(crate) fn meter(&self) -> PgStorageMeter {
        PgStorageMeter::new(self.storage.clone())
    }

    /// The Postgres session limits on tenants' login roles.
    pub(crate) fn role_limits(&self) -> PgRoleLimits {
        PgRoleLimits::new(self.storage.clone())
    }

    /// The fleet migrator.
    pub(crate) fn migrator(&self) -> TenantMigrator {
        TenantMigrator::new(self.storage.clone())
    }

    /// The fleet migrator over the CRM migrations with one more migration of each set
    /// appended (`isolated` for database and schema tenants, `shared` for the shared tables):
    /// a new version, as the next release would bring (the scale run's fleet migration).
    ///
    /// # Errors
    /// `InvalidInput` as `TenantStorage::new`.
    pub(crate) fn migrator_with(
        &self,
        isolated: Migration,
        shared: Migration,
    ) -> Result<TenantMigrator> {
        let extend = |base: &Migrator, extra: Migration| {
            Migrator::with_migrations(base.iter().cloned().chain([extra]).collect())
        };
        let migrations = TenantMigrations::new(&extend(&ISOLATED, isolated))
            .with_shared(&extend(&SHARED, shared))
            .with_definer_functions(self.storage.migrations().definer_functions().to_vec());
        let mut storage = TenantStorage::new(
            self.storage.global_pool().clone(),
            self.storage.servers().clone(),
            migrations,
            self.storage.config().clone(),
        )?;
        if let Some(keys) = self.storage.wall_keys() {
            storage = storage.with_wall(keys.clone());
        }
        Ok(TenantMigrator::new(storage))
    }

    /// The drift check of tenants' schemas against their recorded migration versions.
    pub(crate) fn drift(&self) -> DriftChecker {
        DriftChecker::new(self.storage.clone())
    }

    /// The tenant manager over these adapters and the shared quota, cache and queue; with
    /// `pools`, a suspended or deleted tenant's pool is closed.
    ///
    /// # Errors
    /// The manager's, token service's and hasher's checks.
    pub(crate) fn manager(
        &self,
        config: &Config,
        shared: &Shared,
        backup: Arc<PgDumpBackup>,
        pools: Option<Arc<dyn PoolCloser>>,
        plans: PlanBook,
    ) -> Result<TenantManager> {
        let builder = match pools {
            Some(pools) => TenantManager::builder().with_pool_closer(pools),
            None => TenantManager::builder(),
        };
        builder
            .with_registry(self.registry.clone())
            .with_provisioner(Arc::new(super::provision_limits::LimitedProvisioner::new(
                self.provisioner.clone(),
                self.role_limits(),
                plans.clone(),
            )))
            .with_quota(shared.quota.clone())
            .with_cache(shared.cache.clone())
            .with_jobs(shared.jobs.clone())
            .with_mover(
                super::moves::mover(config, &self.provisioner, &backup),
                config.moves.config,
            )
            .with_backup(backup)
            .with_hasher(hasher(config)?)
            .with_tokens(tokens(config)?)
            .with_plan_book(plans)
            .with_events(shared.events.clone())
            .with_config(manager_config(config))
            .build()
    }
}

/// The Postgres servers of tenants: the admin login's (`default`) and `TENANT_SERVERS`'s.
fn server_map(config: &Config, admin: &sqlx::postgres::PgConnectOptions) -> ServerMap {
    let db = &config.database;
    let servers = db.tenant_servers();
    if servers.is_empty() {
        return ServerMap::default().with_options(
            tenant_manager::ServerId::default_server(),
            admin.clone(),
            db.admin_password.clone(),
        );
    }
    servers
        .into_iter()
        .fold(ServerMap::default(), |map, server| {
            let id = server.spec.id.clone();
            let map = map.with_options(server.spec.id, server.admin, server.admin_password);
            server
                .replicas
                .into_iter()
                .fold(map, |map, replica| map.with_replica_options(&id, replica))
        })
}

/// The deployment's storage naming, from `TENANT_STORAGE_PREFIX`.
///
/// # Errors
/// `InvalidInput` on `storage_prefix` when the prefix does not validate.
pub(crate) fn naming(config: &Config) -> Result<StorageNaming> {
    StorageNaming::new(&config.database.storage_prefix)
}

/// The names of the provisioner's own objects, from `TENANT_STORAGE_PREFIX` and
/// `TENANT_APP_LOGIN`.
fn storage_names(config: &Config) -> Result<StorageConfig> {
    Ok(
        StorageConfig::for_naming(naming(config)?)
            .with_app_login(config.database.app_login.clone()),
    )
}

/// The registry login and its connect options, from `REGISTRY_DATABASE_URL`.
fn registry_login(
    config: &Config,
) -> Result<Option<(RegistryLogin, &sqlx::postgres::PgConnectOptions)>> {
    let db = &config.database;
    match (&db.registry, &db.registry_password) {
        (Some(options), Some(password)) => Ok(Some((
            RegistryLogin::new(options.get_username(), password.clone())?,
            options,
        ))),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_prefix_keeps_the_provisioners_default_names() {
        assert_eq!(
            storage_names(&Config::default()).ok(),
            Some(StorageConfig::default())
        );
    }
}
