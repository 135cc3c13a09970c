//! # tenant-manager-postgres
//!
//! PostgreSQL adapters of tenant-manager: the global registry, provisioning of database-,
//! schema- and row-level (RLS) isolated tenants, connections scoped to one tenant, and
//! pg_dump backups.

pub mod error;
pub mod ident;
pub mod servers;

pub use error::{SqlxResultExt, map_sqlx};
pub use ident::{Ident, quote_ident, quote_literal};
pub use servers::{ServerConfig, ServerMap};

/// The driver, re-exported so hosts use the same version.
pub use sqlx;
