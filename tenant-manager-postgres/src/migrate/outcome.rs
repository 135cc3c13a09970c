//! What applying a migration set to one tenant did, and the version a scope is at.

use sqlx::PgConnection;
use tenant_manager_core::{Entity, Error, Result};

use crate::pg::SqlxResultExt;

/// Versions before and after applying a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Applied {
    /// Newest applied version before (0 for none).
    pub(crate) before: i64,
    /// Newest applied version after.
    pub(crate) after: i64,
}

/// The newest successfully applied version in the scope's `_sqlx_migrations` (0 when the
/// table does not exist yet).
pub(crate) async fn current_version(conn: &mut PgConnection) -> Result<i64> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await
        .map_db(Entity::Record)?;
    if !exists {
        return Ok(0);
    }
    sqlx::query_scalar("SELECT coalesce(max(version), 0) FROM _sqlx_migrations WHERE success")
        .fetch_one(conn)
        .await
        .map_db(Entity::Record)
}

/// A failed application: the error, and the version the storage is at after it when that is
/// known to differ from the start (migrations applied outside one transaction commit one by one).
#[derive(Debug)]
pub(crate) struct Failed {
    /// Why it failed.
    pub(crate) error: Error,
    /// Newest applied version after the failure, when the set ran migration by migration.
    pub(crate) reached: Option<i64>,
}

impl From<Error> for Failed {
    fn from(error: Error) -> Self {
        Self {
            error,
            reached: None,
        }
    }
}

/// What applying a set to one tenant did.
pub(crate) type Outcome = std::result::Result<Applied, Failed>;
