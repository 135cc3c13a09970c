//! What a plan measures and limits in Postgres: the storage a tenant uses
//! ([`PgStorageMeter`]) and the session limits of its role ([`PgRoleLimits`]).

mod limits;
mod meter;

pub use limits::{PgRoleLimits, RoleLimitsReport};
pub use meter::PgStorageMeter;
