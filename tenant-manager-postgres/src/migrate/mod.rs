//! Tenant migrations: the host's migration sets ([`TenantMigrations`]) and the fleet migrator
//! ([`TenantMigrator`]) that applies them to every tenant.

pub(crate) mod apply;
mod fleet;
mod lock;
mod no_tx;
pub(crate) mod record;
pub(crate) mod scope;
mod set;
pub(crate) mod tenant;

pub use fleet::{
    BehindTenant, FleetOptions, FleetProgress, FleetReport, MAX_CONCURRENCY, ProgressFn,
    TenantMigration, TenantMigrator,
};
pub use set::TenantMigrations;
