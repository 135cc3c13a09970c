//! What a scope's migrations must guarantee, checked before their work commits.

use sqlx::{Connection, PgConnection};
use tenant_manager_core::{Entity, Error, Result};

use super::scope::Scope;
use crate::ident::Ident;
use crate::pg::SqlxResultExt;
use crate::wall::Guard;

/// Checks what a scope's migrations must guarantee, before the work commits (so an unsafe set
/// is never applied): behind the wall, every table of a tenant schema or of the shared schema
/// gets the wall's policy and nothing may bypass it ([`crate::wall::secure_schema`], run as
/// the admin in a nested transaction); without it, shared tables need forced row-level
/// security.
pub(crate) async fn verify(conn: &mut PgConnection, scope: Scope<'_>) -> Result<()> {
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
