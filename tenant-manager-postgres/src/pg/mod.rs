//! The crate's Postgres toolbox, beneath every other module: driver errors and SQLSTATEs,
//! admin connections and DDL, advisory locks, marked roles, the catalogue, ownership markers
//! and SCRAM verifiers. It knows nothing of tenants' storage layout, provisioning or the wall.

mod catalog;
mod conn;
mod error;
mod lock;
mod marker;
mod role;
mod scram;
mod sqlstate;

pub use error::{SqlxResultExt, map_migrate, map_sqlx};

pub(crate) use catalog::{
    Object, create_database, current_database_comment, describe, ensure_shared_database, exists,
    mark_shared_database,
};
pub(crate) use conn::{close, connect, connect_existing, ddl, ddl_raw};
pub(crate) use lock::{Hold, TenantLock, acquire, lock_key, lock_shared_database, release};
pub(crate) use marker::{
    LEGACY_SHARED_MARKER, TENANT_MARKER_PREFIX, foreign_shared_database, shared_marker,
    tenant_marker,
};
pub(crate) use role::{
    Login, Marked, UNPRIVILEGED, drop_role, ensure_marked_role, ensure_role, role_comment,
    role_exists,
};
pub(crate) use scram::verifier as scram_verifier;
pub(crate) use sqlstate::{FOREIGN_KEY_VIOLATION, INTERNAL_ERROR, UNIQUE_VIOLATION, has_state};
