//! Tenant migrations: the fleet migrator ([`TenantMigrator`]) that applies the host's migration
//! sets ([`TenantMigrations`]) to every tenant.

mod apply;
mod conns;
pub mod drift;
mod fleet;
mod no_tx;
mod outcome;
pub(crate) mod record;
mod report;
pub(crate) mod scope;
pub(crate) mod tenant;
mod verify;

pub use drift::{DriftChecker, DriftOptions, DriftReport};
pub use fleet::TenantMigrator;
pub use report::{
    BehindTenant, FleetOptions, FleetProgress, FleetReport, MAX_CONCURRENCY, ProgressFn,
    TenantMigration,
};

pub use crate::storage::TenantMigrations;

pub(crate) use apply::apply_to_template;
