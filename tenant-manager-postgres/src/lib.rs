//! # tenant-manager-postgres
//!
//! PostgreSQL adapters of tenant-manager: the global registry, provisioning of database-,
//! schema- and row-level (RLS) isolated tenants, connections scoped to one tenant, and
//! pg_dump backups.

pub mod backup;
pub mod credentials;
pub mod error;
pub mod ident;
pub mod migrate;
pub mod provision;
pub mod registry;
pub mod servers;
pub mod storage;

pub use backup::{BackupConfig, PgDumpBackup, PgTools};
pub use credentials::{DerivedCredentials, TenantCredentials, tenant_role};
pub use error::{SqlxResultExt, map_migrate, map_sqlx};
pub use ident::{Ident, quote_ident, quote_literal};
pub use migrate::{FleetOptions, FleetReport, TenantMigrations, TenantMigrator};
pub use provision::{PostgresProvisioner, StepHook, StepPhase, TenantSeeder};
pub use registry::{PostgresRegistry, migrate_global};
pub use storage::{StorageConfig, TenantStorage};
pub use servers::{ServerConfig, ServerMap};

/// The driver, re-exported so hosts use the same version.
pub use sqlx;
