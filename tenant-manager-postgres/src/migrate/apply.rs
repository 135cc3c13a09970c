//! Applying a migration set to one tenant's storage.

use sqlx::migrate::Migrator;
use sqlx::{Connection, PgConnection};
use tenant_manager_core::{Entity, Error, Result};

use super::lock::{self, Hold};
use super::scope::Scope;
use crate::error::{SqlxResultExt, map_migrate};
use crate::ident::Ident;
use crate::wall::Guard;

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

/// Applies `migrator` inside `scope` on `conn`, under the advisory lock `lock_key` of that
/// database (so two processes never migrate one tenant at once).
///
/// Everything runs in one transaction, each migration in a savepoint, so a failing migration
/// leaves the tenant exactly at its previous version. When a pending migration is marked
/// `-- no-transaction`, the set runs with session-level scope and lock instead
/// ([`super::no_tx`]): each migration commits on its own, and a failure leaves the tenant at
/// the last migration that succeeded.
pub(crate) async fn apply(
    conn: &mut PgConnection,
    scope: Scope<'_>,
    migrator: &Migrator,
    lock_key: i64,
) -> Outcome {
    let mut tx = conn.begin().await.map_db(Entity::Record)?;
    lock::acquire(&mut tx, lock_key, Hold::Transaction).await?;
    scope.enter(&mut tx, true).await?;
    let before = current_version(&mut tx).await?;
    let needs_no_tx = migrator
        .iter()
        .any(|m| m.version > before && m.no_tx && !m.migration_type.is_down_migration());
    if !needs_no_tx {
        migrator
            .run_direct(None, &mut *tx, false)
            .await
            .map_err(map_migrate)?;
        let after = current_version(&mut tx).await?;
        verify(&mut tx, scope).await?;
        tx.commit().await.map_db(Entity::Record)?;
        return Ok(Applied { before, after });
    }
    tx.rollback().await.map_db(Entity::Record)?;
    super::no_tx::apply_without_transaction(conn, scope, migrator, lock_key).await
}

/// Applies the isolated set to a template database being built, as the template owner. The
/// builder holds the server's template lock and the database is not yet a template, so the
/// migration lock taken here never waits.
pub(crate) async fn apply_to_template(
    conn: &mut PgConnection,
    owner: &Ident,
    migrator: &Migrator,
) -> Result<()> {
    let key = crate::provision::lock::lock_key("migrate", &["template"]);
    apply(conn, Scope::Database { role: owner }, migrator, key)
        .await
        .map(|_| ())
        .map_err(|failed| failed.error)
}

/// Checks what a scope's migrations must guarantee, before the work commits (so an unsafe set
/// is never applied): behind the wall, every table of a tenant schema or of the shared schema
/// gets the wall's policy and nothing may bypass it ([`crate::wall::secure_schema`], run as
/// the admin in a nested transaction); without it, shared tables need forced row-level
/// security.
pub(super) async fn verify(conn: &mut PgConnection, scope: Scope<'_>) -> Result<()> {
    let (schema, guard, wall, field) = match scope {
        Scope::Schema {
            schema,
            tenant,
            wall: Some(wall),
            ..
        } => (schema, Guard::Tenant(tenant), wall, "tenant_migrations"),
        Scope::Shared {
            schema,
            wall: Some(wall),
            ..
        } => (schema, Guard::Column, wall, "shared_migrations"),
        Scope::Shared { schema, .. } => return verify_row_security(conn, schema).await,
        Scope::Database { .. } | Scope::Schema { .. } => return Ok(()),
    };
    let mut tx = conn.begin().await.map_db(Entity::Record)?;
    sqlx::raw_sql("SET LOCAL ROLE NONE")
        .execute(&mut *tx)
        .await
        .map_db(Entity::Record)?;
    crate::wall::secure_schema(&mut tx, schema, guard, wall, field).await?;
    tx.commit().await.map_db(Entity::Record)
}

/// Refuses shared tables without forced row-level security and a policy: every table of the
/// shared schema but the migration history is granted to the app login, whether or not it
/// has a `tenant_id` column.
async fn verify_row_security(conn: &mut PgConnection, schema: &Ident) -> Result<()> {
    let unprotected: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND c.relname <> '_sqlx_migrations' \
           AND NOT (c.relrowsecurity AND c.relforcerowsecurity \
                    AND EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid)) \
         ORDER BY 1",
    )
    .bind(schema.as_str())
    .fetch_all(conn)
    .await
    .map_db(Entity::Record)?;
    if unprotected.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid(
            "shared_migrations",
            format!(
                "tables without forced row-level security and a policy: {}",
                unprotected.join(", ")
            ),
        ))
    }
}
