//! The SQL that sets and resets a tenant's scope on a connection of a shared pool.

use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, Connection, PgConnection, Row};
use tenant_manager_core::{DbLimits, Entity, Error, Isolation, Result, Tenant};

use crate::credentials::WallKeys;
use crate::ident::{Ident, quote_literal};
use crate::pg::map_sqlx;
use crate::wall::{self, WallSession};

/// Sets `search_path` (the tenant's quoted schema, or the server's default when `$1` is
/// NULL), `app.tenant_id`, the role (`SET ROLE $3`, untouched when `$3` is NULL) and the
/// plan's `statement_timeout` (`$4`, ms) and `work_mem` (`$5`, kB), each untouched when NULL,
/// for the session, in one round trip.
const APPLY: &str = "SELECT pg_catalog.set_config('search_path', \
     COALESCE($1::text, s.reset_val), false), \
     pg_catalog.set_config('app.tenant_id', $2::text, false), \
     CASE WHEN $3::text IS NULL THEN NULL ELSE pg_catalog.set_config('role', $3::text, false) END, \
     CASE WHEN $4::text IS NULL THEN NULL \
          ELSE pg_catalog.set_config('statement_timeout', $4::text, false) END, \
     CASE WHEN $5::text IS NULL THEN NULL \
          ELSE pg_catalog.set_config('work_mem', $5::text, false) END \
     FROM pg_catalog.pg_settings s WHERE s.name = 'search_path'";

/// The values of a plan's session limits as `set_config` takes them: `statement_timeout` in
/// milliseconds, `work_mem` in kB (`'<n>kB'`). Only validated integers reach the SQL.
fn limit_values(limits: &DbLimits) -> (Option<String>, Option<String>) {
    (
        limits.statement_timeout_ms.map(|ms| ms.to_string()),
        limits.work_mem_kb.map(|kb| format!("{kb}kB")),
    )
}

/// Clears everything a tenant may have left on the session, in one round trip (simple
/// protocol): the first statement reports whether the connection was idle outside any
/// transaction (a statement that opens its own transaction starts it), then cursors,
/// `SET ROLE` / session authorization, every setting (so `search_path` and
/// `app.tenant_id`), `LISTEN`s, advisory locks, temporary objects (which would shadow the next
/// tenant's tables through `pg_temp`) and sequence state (so the wall's verdict, which rests on
/// this session's `currval`) are dropped. The last statement counts the session's prepared
/// statements: the driver's own (protocol-level) must be exactly those it caches, and none may
/// come from SQL `PREPARE`, else SQL run by the tenant replaced or dropped one the next tenant
/// would execute, and the connection is discarded.
const RESET: &str = "SELECT pg_catalog.statement_timestamp() = pg_catalog.transaction_timestamp(); \
     CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *; \
     SELECT pg_catalog.pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES; \
     SELECT count(*) FILTER (WHERE from_sql), count(*) FILTER (WHERE NOT from_sql) \
     FROM pg_catalog.pg_prepared_statements";

/// Sets `tenant`'s scope: for schema isolation `search_path` to its quoted schema only; for
/// shared isolation the default `search_path`; for both `app.tenant_id` to its id (row-level
/// security policies read it with `current_setting('app.tenant_id')`); with `role`, the
/// current role (`SET ROLE`; the name is bound, a role name is taken as is, unquoted).
/// [`RESET`]'s `SET SESSION AUTHORIZATION DEFAULT` undoes the role as well. The plan's session
/// `limits` (`statement_timeout`, `work_mem`) are set too; [`RESET`]'s `RESET ALL` undoes them,
/// so they never reach another tenant's checkout of the connection.
///
/// # Errors
/// - `InvalidInput` when a schema tenant has no valid schema, or for database isolation.
/// - `Unavailable` when the connection is broken or still inside a transaction.
/// - `Forbidden` when the login may not `SET ROLE` to `role`.
pub(crate) async fn apply(
    conn: &mut PgConnection,
    tenant: &Tenant,
    role: Option<&Ident>,
    limits: &DbLimits,
) -> Result<()> {
    let search_path = search_path(tenant)?;
    limits.validate()?;
    outside_transaction(conn)?;
    let (timeout, work_mem) = limit_values(limits);
    sqlx::query(APPLY)
        .bind(search_path)
        .bind(tenant.id.to_string())
        .bind(role.map(Ident::as_str))
        .bind(timeout)
        .bind(work_mem)
        .execute(&mut *conn)
        .await
        .map_err(|e| map_sqlx(Entity::Tenant, e))?;
    Ok(())
}

/// Rows [`RESET`] returns: the transaction check, the advisory unlock, the prepared counts.
const RESET_ROWS: usize = 3;

/// Resets the session (see [`RESET`]).
///
/// # Errors
/// - `Unavailable` when the connection was inside a transaction (a transaction the caller
///   opened with a plain `BEGIN` and left open), or is broken.
/// - `Internal` when a reset statement fails.
pub(crate) async fn reset(conn: &mut PgConnection) -> Result<()> {
    if conn.is_in_transaction() {
        return Err(left_in_transaction());
    }
    let rows = sqlx::raw_sql(RESET)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| map_sqlx(Entity::Tenant, e))?;
    check_reset(conn, &rows)
}

/// Checks what [`RESET`] reported: the session was outside any transaction, and its prepared
/// statements are exactly the driver's own.
fn check_reset(conn: &PgConnection, rows: &[PgRow]) -> Result<()> {
    let [clean, _unlock, prepared] = rows else {
        return Err(Error::internal(
            "the session reset returned an unexpected result",
        ));
    };
    if !clean
        .try_get::<bool, _>(0)
        .map_err(|e| map_sqlx(Entity::Tenant, e))?
    {
        return Err(left_in_transaction());
    }
    let (from_sql, protocol) = (|| {
        Ok::<_, sqlx::Error>((
            prepared.try_get::<i64, _>(0)?,
            prepared.try_get::<i64, _>(1)?,
        ))
    })()
    .map_err(|e| map_sqlx(Entity::Tenant, e))?;
    let cached = i64::try_from(conn.cached_statements_size()).unwrap_or(i64::MAX);
    if from_sql == 0 && protocol == cached {
        Ok(())
    } else {
        Err(Error::unavailable(
            "postgres",
            "prepared statements of the session were changed by SQL",
        ))
    }
}

fn left_in_transaction() -> Error {
    Error::unavailable(
        "postgres",
        "pooled connection returned inside a transaction",
    )
}

/// Whether a returned connection may keep its tenant's scope (tenant affinity): the driver
/// has read every reply, queued nothing, and the server's last word was that the session is
/// outside any transaction block (which also sees a `BEGIN` sent as plain SQL). Everything
/// else the tenant may have left (settings, temporary tables, locks, listeners, prepared
/// statements) is the tenant's own and is cleared, and checked, before any other tenant's
/// scope is set.
pub(crate) fn may_keep(conn: &PgConnection) -> bool {
    conn.is_settled_outside_transaction() && !conn.is_in_transaction()
}

/// Sets `tenant`'s verified scope behind the wall, in one round trip (simple protocol, values
/// as literals): `wall.enter()` with a proof for this backend and a fresh nonce, then
/// `search_path` (schema isolation: the tenant's quoted schema only; shared: left at the
/// default the reset restored) and `app.tenant_id` (for hosts that read it; no policy trusts
/// it), and the plan's session `limits`. The backend's identity is read once per connection
/// into `session`.
///
/// # Errors
/// As [`apply`]; `Internal` when the database refuses the proof (the connection is then
/// discarded).
pub(crate) async fn apply_walled(
    conn: &mut PgConnection,
    session: &mut Option<WallSession>,
    keys: &WallKeys,
    tenant: &Tenant,
    carried: bool,
    limits: &DbLimits,
) -> Result<()> {
    let search_path = search_path(tenant)?;
    limits.validate()?;
    outside_transaction(conn)?;
    let identity = match *session {
        Some(identity) => identity,
        None => {
            let identity = wall::session_id(conn).await?;
            *session = Some(identity);
            identity
        }
    };
    let mut sql = String::new();
    if carried {
        // Another tenant's scope first goes, in the same round trip (and transaction).
        sql.push_str(RESET);
        sql.push_str("; ");
    }
    sql.push_str(&wall::enter_statement(keys, identity, tenant.id)?);
    sql.push_str(&format!(
        "; SELECT pg_catalog.set_config('app.tenant_id', '{}', false)",
        tenant.id
    ));
    if let Some(path) = search_path {
        sql.push_str(&format!(
            ", pg_catalog.set_config('search_path', {}, false)",
            quote_literal(&path)
        ));
    }
    let (timeout, work_mem) = limit_values(limits);
    for (name, value) in [("statement_timeout", timeout), ("work_mem", work_mem)] {
        if let Some(value) = value {
            sql.push_str(&format!(
                ", pg_catalog.set_config('{name}', {}, false)",
                quote_literal(&value)
            ));
        }
    }
    let rows = sqlx::raw_sql(AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| map_sqlx(Entity::Tenant, e))?;
    let rows = if carried {
        let (reset, rest) = rows.split_at(RESET_ROWS.min(rows.len()));
        check_reset(conn, reset)?;
        rest
    } else {
        &rows[..]
    };
    let entered = rows
        .first()
        .map(|row| row.try_get::<bool, _>(0))
        .transpose()
        .map_err(|e| map_sqlx(Entity::Tenant, e))?;
    if entered == Some(true) {
        Ok(())
    } else {
        Err(wall::refused(keys))
    }
}

/// Refuses a connection that is inside a transaction (one a host left open) or still owes
/// replies, as far as the driver knows without a round trip.
fn outside_transaction(conn: &PgConnection) -> Result<()> {
    if !may_keep(conn) {
        return Err(Error::unavailable(
            "postgres",
            "pooled connection is inside a transaction",
        ));
    }
    Ok(())
}

/// The quoted schema of a schema tenant, `None` for a shared tenant.
fn search_path(tenant: &Tenant) -> Result<Option<String>> {
    match tenant.isolation {
        Isolation::Schema => {
            let schema = tenant.placement.schema.as_deref().ok_or_else(|| {
                Error::invalid("placement.schema", "schema isolation needs a schema")
            })?;
            Ok(Some(Ident::new(schema, "placement.schema")?.quoted()))
        }
        Isolation::Shared => Ok(None),
        Isolation::Database => Err(Error::invalid(
            "isolation",
            "database-isolated tenants have pools of their own",
        )),
    }
}
