//! The SQL that sets and resets a tenant's scope on a connection of a shared pool.

use sqlx::{Connection, PgConnection};
use tenant_manager_core::{Entity, Error, Isolation, Result, Tenant};

use crate::error::map_sqlx;
use crate::ident::Ident;

/// Sets `search_path` (the tenant's quoted schema, or the server's default when `$1` is
/// NULL), `app.tenant_id`, and the role (`SET ROLE $3`, untouched when `$3` is NULL) for the
/// session, in one round trip.
const APPLY: &str = "SELECT pg_catalog.set_config('search_path', \
     COALESCE($1::text, s.reset_val), false), \
     pg_catalog.set_config('app.tenant_id', $2::text, false), \
     CASE WHEN $3::text IS NULL THEN NULL ELSE pg_catalog.set_config('role', $3::text, false) END \
     FROM pg_catalog.pg_settings s WHERE s.name = 'search_path'";

/// Clears everything a tenant may have left on the session, in one round trip (simple
/// protocol): the first statement reports whether the connection was idle outside any
/// transaction (a statement that opens its own transaction starts it), then cursors,
/// `SET ROLE` / session authorization, every setting (so `search_path` and
/// `app.tenant_id`), `LISTEN`s, advisory locks, temporary tables (which would shadow the next
/// tenant's tables through `pg_temp`) and sequence state are dropped. Prepared statements
/// stay: they belong to the driver's cache, and cached plans follow `search_path` changes.
const RESET: &str = "SELECT pg_catalog.statement_timestamp() = pg_catalog.transaction_timestamp(); \
     CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *; \
     SELECT pg_catalog.pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES";

/// Sets `tenant`'s scope: for schema isolation `search_path` to its quoted schema only; for
/// shared isolation the default `search_path`; for both `app.tenant_id` to its id (row-level
/// security policies read it with `current_setting('app.tenant_id')`); with `role`, the
/// current role (`SET ROLE`; the name is bound, a role name is taken as is, unquoted).
/// [`RESET`]'s `SET SESSION AUTHORIZATION DEFAULT` undoes the role as well.
///
/// # Errors
/// - `InvalidInput` when a schema tenant has no valid schema, or for database isolation.
/// - `Unavailable` when the connection is broken or still inside a transaction.
/// - `Forbidden` when the login may not `SET ROLE` to `role`.
pub(crate) async fn apply(
    conn: &mut PgConnection,
    tenant: &Tenant,
    role: Option<&Ident>,
) -> Result<()> {
    let search_path = match tenant.isolation {
        Isolation::Schema => {
            let schema = tenant.placement.schema.as_deref().ok_or_else(|| {
                Error::invalid("placement.schema", "schema isolation needs a schema")
            })?;
            Some(Ident::new(schema, "placement.schema")?.quoted())
        }
        Isolation::Shared => None,
        Isolation::Database => {
            return Err(Error::invalid(
                "isolation",
                "database-isolated tenants have pools of their own",
            ));
        }
    };
    if conn.is_in_transaction() {
        return Err(Error::unavailable(
            "postgres",
            "pooled connection is inside a transaction",
        ));
    }
    sqlx::query(APPLY)
        .bind(search_path)
        .bind(tenant.id.to_string())
        .bind(role.map(Ident::as_str))
        .execute(&mut *conn)
        .await
        .map_err(|e| map_sqlx(Entity::Tenant, e))?;
    Ok(())
}

/// Resets the session (see [`RESET`]).
///
/// # Errors
/// - `Unavailable` when the connection was inside a transaction (a transaction the caller
///   opened with a plain `BEGIN` and left open), or is broken.
/// - `Internal` when a reset statement fails.
pub(crate) async fn reset(conn: &mut PgConnection) -> Result<()> {
    if conn.is_in_transaction() {
        return Err(Error::unavailable(
            "postgres",
            "pooled connection returned inside a transaction",
        ));
    }
    let rows = sqlx::raw_sql(RESET)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| map_sqlx(Entity::Tenant, e))?;
    let clean = rows
        .first()
        .map(|row| sqlx::Row::try_get::<bool, _>(row, 0))
        .transpose()
        .map_err(|e| map_sqlx(Entity::Tenant, e))?;
    match clean {
        Some(true) => Ok(()),
        _ => Err(Error::unavailable(
            "postgres",
            "pooled connection returned inside a transaction",
        )),
    }
}
