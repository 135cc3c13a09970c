//! Postgres mode: the global registry, provisioning of tenant storage with the server's CRM
//! migrations, fleet migrations and pg_dump backups.

use std::path::Path;
use std::sync::Arc;

use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;
use tenant_manager::fs_store::FilesystemBackupStore;
use tenant_manager::manager::TenantManager;
use tenant_manager::postgres::{
    BackupConfig, DerivedCredentials, PgDumpBackup, PostgresProvisioner, PostgresRegistry,
    ServerMap, StorageConfig, TenantMigrations, TenantMigrator, TenantStorage, migrate_global,
};
use tenant_manager::{Error, Result};

use super::{Shared, hasher, manager_config, plan_catalog, tokens};
use crate::config::Config;

/// The CRM migrations of database- and schema-isolated tenants (the `companies` table).
static ISOLATED: Migrator = sqlx::migrate!("./migrations/tenant");
/// The CRM migrations of the shared, row-level secured tables.
static SHARED: Migrator = sqlx::migrate!("./migrations/shared");

/// Connections of the global database pool (registry, provisioning steps, backup catalogue).
const GLOBAL_POOL_SIZE: u32 = 10;

/// The Postgres adapters, connected and with the global database migrated.
#[derive(Debug, Clone)]
pub(crate) struct Postgres {
    pub(crate) registry: Arc<PostgresRegistry>,
    pub(crate) storage: TenantStorage,
    pub(crate) provisioner: Arc<PostgresProvisioner>,
}

impl Postgres {
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
            .max_connections(GLOBAL_POOL_SIZE)
            .connect_with(global.clone())
            .await
            .map_err(|e| Error::unavailable("postgres", e))?;
        migrate_global(&pool).await?;
        let servers = ServerMap::default().with_options(
            tenant_manager::ServerId::default_server(),
            admin.clone(),
            db.admin_password.clone(),
        );
        let migrations = TenantMigrations::new(&ISOLATED).with_shared(&SHARED);
        let storage =
            TenantStorage::new(pool.clone(), servers, migrations, StorageConfig::default())?;
        let credentials = Arc::new(DerivedCredentials::new(secret.clone())?);
        let provisioner = Arc::new(PostgresProvisioner::new(storage.clone(), credentials));
        Ok(Self {
            registry: Arc::new(PostgresRegistry::new(pool)),
            storage,
            provisioner,
        })
    }

    /// Backups with `pg_dump` into a filesystem store rooted at `dir`.
    pub(crate) fn backup(&self, dir: &Path) -> Arc<PgDumpBackup> {
        let store = Arc::new(FilesystemBackupStore::new(dir.to_path_buf()));
        Arc::new(PgDumpBackup::new(
            self.storage.clone(),
            store,
            BackupConfig::default(),
        ))
    }

    /// The fleet migrator.
    pub(crate) fn migrator(&self) -> TenantMigrator {
        TenantMigrator::new(self.storage.clone())
    }

    /// The tenant manager over these adapters and the shared quota, cache and queue.
    ///
    /// # Errors
    /// The manager's, token service's and hasher's checks.
    pub(crate) fn manager(
        &self,
        config: &Config,
        shared: &Shared,
        backup: Arc<PgDumpBackup>,
    ) -> Result<TenantManager> {
        TenantManager::builder()
            .with_registry(self.registry.clone())
            .with_provisioner(self.provisioner.clone())
            .with_quota(shared.quota.clone())
            .with_cache(shared.cache.clone())
            .with_jobs(shared.jobs.clone())
            .with_backup(backup)
            .with_hasher(hasher(config)?)
            .with_tokens(tokens(config)?)
            .with_plans(plan_catalog(config))
            .with_config(manager_config(config))
            .build()
    }
}
