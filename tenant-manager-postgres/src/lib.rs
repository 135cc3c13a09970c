//! # tenant-manager-postgres
//!
//! PostgreSQL adapters of tenant-manager: the global registry, provisioning of database-,
//! schema- and row-level (RLS) isolated tenants, fleet migrations, connections scoped to one
//! tenant, and pg_dump backups.
//!
//! - [`PostgresRegistry`] on the global database; [`migrate_global`] creates its `tm_*` tables
//!   (run it once per deploy).
//! - [`TenantStorage`] says where tenants' data lives (server map, the host's
//!   [`TenantMigrations`], names of templates and shared owners); the provisioner, the fleet
//!   migrator and the backups share one.
//! - [`PostgresProvisioner`] creates each tenant's storage as recorded, resumable steps under a
//!   per-tenant advisory lock; [`TenantMigrator`] brings every tenant to the latest migration;
//!   [`PgDumpBackup`] dumps, restores (or clones) and prunes tenants' data.
//! - [`DriftChecker`] compares every tenant's schema with the schema of its recorded migration
//!   version and lists what is missing, extra or changed ([`migrate::drift`]).
//! - [`TenantCredentials`] gives the password of a tenant's login role ([`DerivedCredentials`]
//!   derives it from a master secret, so it is never stored).
//! - [`RegistryLogin`]: the registry's pool can log in as a login that owns only the `tm_*`
//!   tables ([`ensure_registry_login`]), the admin login staying for provisioning.
//! - [`AppLogin`] is the unprivileged login of pools shared by schema- and row-isolated
//!   tenants: [`PostgresProvisioner::ensure_app_login`] creates it (and grants it what existing
//!   tenants need), [`PgTenantConnector::with_app_login`] connects with it, and
//!   [`PgTenantConnector::with_wall`] proves each checkout's tenant to the [`wall`]: Postgres
//!   itself keeps those tenants apart, also from SQL injected into a tenant's session (every
//!   tenant table admits only the session's verified tenant's rows).
//! - [`replicas`]: servers may list streaming replicas ([`ServerMap::with_replica`]);
//!   [`PgTenantPools::acquire_read`](tenant_manager_core::pool::TenantPools::acquire_read) hands
//!   out read-only checkouts there while a lag monitor finds them within [`ReplicaPolicy`]'s
//!   bounds, else on the primary with the session read-only.
//!
//! ```no_run
//! use std::sync::Arc;
//! use tenant_manager_core::{Provisioner, Secret, TenantRegistry};
//! use tenant_manager_postgres::*;
//!
//! static TENANT_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./tests/migrations/tenant");
//! static SHARED_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./tests/migrations/shared");
//!
//! # async fn run() -> tenant_manager_core::Result<()> {
//! let registry = PostgresRegistry::connect("postgres://app@db/twenty_global", 10).await?;
//! migrate_global(registry.pool()).await?;
//! let master = Secret::new("a master secret of 32 bytes or more");
//! // The key the wall's proofs are signed with, derived from the same master.
//! let wall_key = WallKeys::derived(&master, 1)?;
//! let storage = TenantStorage::new(
//!     registry.pool().clone(),
//!     ServerMap::single("postgres://admin@db/postgres")?,
//!     TenantMigrations::new(&TENANT_MIGRATIONS).with_shared(&SHARED_MIGRATIONS),
//!     StorageConfig::default(),
//! )?
//! .with_wall(wall_key.clone());
//! let credentials = Arc::new(DerivedCredentials::new(master.clone())?);
//! let provisioner = PostgresProvisioner::new(storage.clone(), credentials.clone());
//! // The unprivileged login of shared pools, its password derived from the same master.
//! let app_login = AppLogin::derived(DEFAULT_APP_LOGIN, &master)?;
//! provisioner.ensure_app_login(&app_login).await?;
//! let pools = PgTenantConnector::new(storage.servers().clone(), credentials)
//!     .with_app_login(app_login)
//!     .with_wall(wall_key)
//!     .into_pools(tenant_manager_core::pool::PoolConfig::default())?;
//! let migrator = TenantMigrator::new(storage);
//! # let tenant = registry.get_tenant(tenant_manager_core::TenantId::new()).await?;
//! provisioner.provision(&tenant).await?;
//! let report = migrator.migrate_all(&FleetOptions::default(), None).await?;
//! assert_eq!(report.failed(), 0);
//! let mut conn = pools.acquire(&tenant).await?;
//! sqlx::query("SELECT count(*) FROM companies").execute(&mut *conn).await.ok();
//! # Ok(())
//! # }
//! ```

pub mod app_login;
pub mod backup;
pub mod credentials;
pub mod ident;
pub mod migrate;
pub mod moves;
mod pg;
pub mod pool;
pub mod provision;
pub mod refresh;
pub mod registry;
pub mod registry_login;
pub mod replicas;
pub mod servers;
pub mod storage;
pub mod usage;
pub mod wall;

pub use app_login::{AppLogin, DEFAULT_APP_LOGIN};
pub use backup::{BackupConfig, PgDumpBackup, PgTools};
pub use credentials::{DerivedCredentials, TenantCredentials, WallKeys, tenant_role};
pub use ident::{Ident, quote_ident, quote_literal};
pub use migrate::{
    DriftChecker, DriftOptions, DriftReport, FleetOptions, FleetReport, TenantMigrator,
};
pub use moves::{MoveHook, PostgresMover};
pub use pg::{SqlxResultExt, map_migrate, map_sqlx};
pub use pool::{PgConnectionManager, PgTenantConnector, PgTenantPools};
pub use provision::{
    AppLoginReport, PostgresProvisioner, SharedClaimReport, StepHook, StepPhase, TenantSeeder,
};
pub use refresh::PostgresRefreshTokens;
pub use registry::{PostgresRegistry, migrate_global};
pub use registry_login::{RegistryLogin, RegistryLoginReport, ensure_registry_login};
pub use replicas::ReplicaPolicy;
pub use servers::{ReplicaConfig, ServerConfig, ServerMap};
pub use storage::{StorageConfig, TenantMigrations, TenantStorage};
pub use wall::WallAdmin;

/// The driver, re-exported so hosts use the same version.
pub use sqlx;
