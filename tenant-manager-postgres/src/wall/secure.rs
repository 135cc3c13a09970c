//! Putting a schema's tables behind the wall after migrations, and refusing what bypasses it.

use sqlx::PgConnection;
use tenant_manager_core::{Entity, Error, Result, TenantId};
use tracing::Instrument;

use crate::ident::{Ident, quote_ident};
use crate::pg::{self, SqlxResultExt};
use crate::storage::WallContext;

/// The verified tenant of the session, as every wall policy embeds it: an uncorrelated scalar
/// subquery, so the planner evaluates it once per statement (an InitPlan). The pid finds the
/// session's row through the primary key; the token proves the row was written by
/// `wall.enter()` in this very session.
pub const VERIFIED_TENANT: &str = "(SELECT s.tenant FROM wall.sessions s \
     WHERE s.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid() \
     AND s.token OPERATOR(pg_catalog.=) pg_catalog.currval('wall.session_token'::pg_catalog.regclass))";

/// Name of the policy the wall puts on every tenant table.
pub const WALL_POLICY: &str = "tenant_wall";

/// The migration history: never granted to the app login, so left without a policy.
const HISTORY: &str = "_sqlx_migrations";

/// Whose rows a schema's tables hold.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Guard {
    /// One tenant's schema: every row is that tenant's.
    Tenant(TenantId),
    /// Shared tables: each row's `tenant_id` column says whose it is.
    Column,
}

impl Guard {
    fn predicate(self) -> String {
        match self {
            Guard::Tenant(id) => format!("{VERIFIED_TENANT} OPERATOR(pg_catalog.=) '{id}'::uuid"),
            Guard::Column => format!("tenant_id OPERATOR(pg_catalog.=) {VERIFIED_TENANT}"),
        }
    }
}

/// One table's row-security state.
#[derive(sqlx::FromRow)]
struct TableState {
    name: String,
    enabled: bool,
    forced: bool,
    has_tenant_id: bool,
    /// `pg_get_expr` of its `tenant_wall` policy's USING and WITH CHECK, if any.
    wall_using: Option<String>,
    wall_check: Option<String>,
    /// Its other permissive policies.
    others: Vec<String>,
    /// Of those, the ones that read the pre-wall setting `app.tenant_id`.
    legacy: Vec<String>,
}

/// Puts every table of `schema` behind the wall (ENABLE and FORCE ROW LEVEL SECURITY, policy
/// [`WALL_POLICY`] on the verified tenant), then refuses what would bypass it (see
/// [`audit`]). Tables already walled are left untouched, so a run with nothing to do takes no
/// table lock. Permissive policies reading the pre-wall setting `app.tenant_id` are dropped
/// (the wall replaces them); any other permissive policy is refused, since it would add rows.
/// Run as a superuser inside the migration's transaction. Returns how many objects it
/// changed (0 when all was in place).
///
/// # Errors
/// `InvalidInput` on `field` naming the first object that bypasses the wall.
pub(crate) async fn secure_schema(
    conn: &mut PgConnection,
    schema: &Ident,
    guard: Guard,
    wall: WallContext<'_>,
    field: &'static str,
) -> Result<usize> {
    let app = wall.app;
    let canonical = canonical_expr(conn, guard)
        .instrument(tracing::debug_span!("secure.canonical"))
        .await?;
    let tables: Vec<TableState> = sqlx::query_as(
        "SELECT c.relname::text AS name, c.relrowsecurity AS enabled, \
                c.relforcerowsecurity AS forced, \
                EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid \
                        AND a.attname = 'tenant_id' AND NOT a.attisdropped) AS has_tenant_id, \
                (SELECT pg_get_expr(p.polqual, p.polrelid) FROM pg_policy p \
                  WHERE p.polrelid = c.oid AND p.polname = $2) AS wall_using, \
                (SELECT pg_get_expr(p.polwithcheck, p.polrelid) FROM pg_policy p \
                  WHERE p.polrelid = c.oid AND p.polname = $2) AS wall_check, \
                ARRAY(SELECT p.polname::text FROM pg_policy p WHERE p.polrelid = c.oid \
                      AND p.polpermissive AND p.polname <> $2 ORDER BY 1) AS others, \
                ARRAY(SELECT p.polname::text FROM pg_policy p WHERE p.polrelid = c.oid \
                      AND p.polpermissive AND p.polname <> $2 \
                      AND (coalesce(pg_get_expr(p.polqual, p.polrelid), '') \
                             || coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '')) \
                          LIKE '%app.tenant_id%' ORDER BY 1) AS legacy \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND c.relname <> $3 ORDER BY 1",
    )
    .bind(schema.as_str())
    .bind(WALL_POLICY)
    .bind(HISTORY)
    .fetch_all(&mut *conn)
    .instrument(tracing::debug_span!("secure.tables"))
    .await
    .map_db(Entity::Record)?;
    let predicate = guard.predicate();
    let mut changed = 0;
    for table in tables {
        let qualified = format!("{schema}.{}", quote_ident(&table.name));
        if matches!(guard, Guard::Column) && !table.has_tenant_id {
            return Err(bypass(
                field,
                &qualified,
                "a shared table without a tenant_id column",
            ));
        }
        if let Some(other) = table.others.iter().find(|p| !table.legacy.contains(p)) {
            return Err(bypass(
                field,
                &qualified,
                &format!("its permissive policy {other} would add rows to the wall's"),
            ));
        }
        let mut sql = String::new();
        for legacy in &table.legacy {
            sql.push_str(&format!(
                "DROP POLICY {} ON {qualified}; ",
                quote_ident(legacy)
            ));
        }
        if !table.enabled {
            sql.push_str(&format!(
                "ALTER TABLE {qualified} ENABLE ROW LEVEL SECURITY; "
            ));
        }
        if !table.forced {
            sql.push_str(&format!(
                "ALTER TABLE {qualified} FORCE ROW LEVEL SECURITY; "
            ));
        }
        let walled = table.wall_using.as_deref() == Some(canonical.as_str())
            && table.wall_check.as_deref() == Some(canonical.as_str());
        if !walled {
            sql.push_str(&format!(
                "DROP POLICY IF EXISTS {WALL_POLICY} ON {qualified}; \
                 CREATE POLICY {WALL_POLICY} ON {qualified} USING ({predicate}) \
                 WITH CHECK ({predicate}); "
            ));
        }
        if !sql.is_empty() {
            pg::ddl(conn, sql)
                .instrument(tracing::debug_span!("secure.ddl"))
                .await?;
            changed += 1;
        }
    }
    if revoke_history(conn, schema, app)
        .instrument(tracing::debug_span!("secure.revoke"))
        .await?
    {
        changed += 1;
    }
    audit(conn, schema, wall, field)
        .instrument(tracing::debug_span!("secure.audit"))
        .await?;
    Ok(changed)
}

/// Takes every privilege on the schema's migration history from the app login (default
/// privileges grant it the tables its owner creates; the history has no policy).
async fn revoke_history(conn: &mut PgConnection, schema: &Ident, app: &Ident) -> Result<bool> {
    let granted: bool = sqlx::query_scalar(
        "SELECT coalesce(has_table_privilege($2, c.oid, \
                 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER'), false) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relname = $3",
    )
    .bind(schema.as_str())
    .bind(app.as_str())
    .bind(HISTORY)
    .fetch_optional(&mut *conn)
    .await
    .map_db(Entity::Record)?
    .unwrap_or(false);
    if granted {
        pg::ddl(
            conn,
            format!(
                "REVOKE ALL ON TABLE {schema}.{} FROM {app}",
                quote_ident(HISTORY)
            ),
        )
        .await?;
    }
    Ok(granted)
}

/// How Postgres prints the guard's predicate back (`pg_get_expr`), learnt from a policy on a
/// temporary table dropped at commit, so existing policies compare as text.
async fn canonical_expr(conn: &mut PgConnection, guard: Guard) -> Result<String> {
    let predicate = guard.predicate();
    pg::ddl(
        conn,
        format!(
            "CREATE TEMPORARY TABLE IF NOT EXISTS pg_temp.tm_wall_probe (tenant_id uuid) ON COMMIT DROP; \
             DROP POLICY IF EXISTS probe ON pg_temp.tm_wall_probe; \
             CREATE POLICY probe ON pg_temp.tm_wall_probe USING ({predicate})"
        ),
    )
    .await?;
    let text: Option<String> = sqlx::query_scalar(
        "SELECT pg_get_expr(p.polqual, p.polrelid) FROM pg_policy p \
         WHERE p.polrelid = 'pg_temp.tm_wall_probe'::regclass AND p.polname = 'probe'",
    )
    .fetch_one(&mut *conn)
    .await
    .map_db(Entity::Record)?;
    text.ok_or_else(|| Error::internal("the wall's probe policy has no expression"))
}

fn bypass(field: &'static str, object: &str, why: &str) -> Error {
    Error::invalid(field, format!("{object} bypasses the tenant wall: {why}"))
}

/// Refuses what in `schema` would let the app login past the wall: a view without
/// `security_invoker` (it reads with its owner's rights), a materialized view or foreign table
/// (no row-level security), a `SECURITY DEFINER` function, a table without forced row-level
/// security and the wall's policy, an object the app login owns, `CREATE` on the schema for
/// the app login. `SECURITY DEFINER` functions the host allowed by name are let be.
///
/// # Errors
/// `InvalidInput` on `field` naming the first such object.
pub(crate) async fn audit(
    conn: &mut PgConnection,
    schema: &Ident,
    wall: WallContext<'_>,
    field: &'static str,
) -> Result<()> {
    let app = wall.app;
    let found: Option<(String, String)> = sqlx::query_as(
        "WITH ns AS (SELECT oid FROM pg_namespace WHERE nspname = $1), \
              app AS (SELECT oid FROM pg_roles WHERE rolname = $2) \
         SELECT object, why FROM ( \
           SELECT CASE WHEN bypass THEN 1 WHEN owned THEN 3 END AS o, object, \
                  CASE WHEN bypass THEN \
                    CASE relkind WHEN 'v' THEN 'a view without security_invoker reads with its owner''s rights' \
                                 WHEN 'm' THEN 'a materialized view has no row-level security' \
                                 WHEN 'f' THEN 'a foreign table has no row-level security' \
                                 ELSE 'a table without forced row-level security and the wall''s policy' END \
                  ELSE 'owned by the app login' END AS why \
           FROM ( \
             SELECT c.relname::text AS object, c.relkind, \
                    c.relowner = (SELECT oid FROM app) AS owned, \
                    c.relname <> $4 AND ( \
                      (c.relkind = 'v' AND NOT EXISTS (SELECT 1 FROM unnest(c.reloptions) o \
                                                        WHERE o ~* '^security_invoker=(true|on|yes|1)$')) \
                      OR c.relkind IN ('m', 'f') \
                      OR (c.relkind IN ('r', 'p') AND NOT (c.relrowsecurity AND c.relforcerowsecurity \
                           AND w.walled IS NOT NULL))) \
                      AS bypass \
             FROM pg_class c \
             LEFT JOIN LATERAL (SELECT true AS walled FROM pg_policy p \
                                WHERE p.polrelid = c.oid AND p.polname = $3 LIMIT 1) w ON true \
             WHERE c.relnamespace = (SELECT oid FROM ns) \
             OFFSET 0 \
           ) r \
           UNION ALL \
           SELECT 2, p.proname::text || '()', 'a SECURITY DEFINER function runs with its owner''s rights' \
           FROM pg_proc p \
           WHERE p.pronamespace = (SELECT oid FROM ns) AND p.prosecdef AND NOT p.proname = ANY($5) \
           UNION ALL \
           SELECT 4, 'schema ' || $1, 'the app login may create objects in it' \
           WHERE has_schema_privilege($2, $1, 'CREATE') \
         ) f WHERE o IS NOT NULL ORDER BY o, object LIMIT 1",
    )
    .bind(schema.as_str())
    .bind(app.as_str())
    .bind(WALL_POLICY)
    .bind(HISTORY)
    .bind(wall.definers)
    .fetch_optional(&mut *conn)
    .await
    .map_db(Entity::Record)?;
    match found {
        None => Ok(()),
        Some((object, why)) => Err(bypass(field, &format!("{schema}.{object}"), &why)),
    }
}
