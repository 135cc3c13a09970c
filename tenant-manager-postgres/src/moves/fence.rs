//! The write fence on a move's source, in Postgres itself: the application's pause (writes
//! answer `503 tenant_moving`) reaches only the instances that have seen it; an instance with a
//! stale cache, or cut off from Redis, could still write to the source while it is copied, and
//! that write would be lost. The fence refuses it.
//!
//! | isolation | fence | lifted by |
//! |---|---|---|
//! | `Schema` | `REVOKE INSERT, UPDATE, DELETE, TRUNCATE` on every table of the tenant's schema from the app login (statements in its open sessions are refused from the next one on) | granting back exactly the privileges captured before the revoke |
//! | `Database` | `ALTER ROLE <tenant role>` and `ALTER DATABASE <tenant db>` `SET default_transaction_read_only = on`, then the tenant's open backends terminated, so a stale pool reconnects read-only | the captured settings put back (or reset), and the backends terminated again so pools reconnect read-write |
//! | `Shared` | none (a documented limit, see below) | - |
//!
//! The database fence stops honest clients: a session may still run `SET
//! default_transaction_read_only = off` or `BEGIN READ WRITE`. Only the tenant's own login can
//! connect to its database, so such SQL can only write the tenant's own data, which the move
//! then loses: it is the tenant's own doing, not a leak.
//!
//! Shared tenants are not fenced in Postgres. Their rows sit in tables every tenant of the
//! database writes through the same app login, so a grant cannot single them out; a
//! restrictive row-level policy reading a fence table would add a lookup to every write of
//! every tenant of the shared database, and a fence there would have to pass through the wall's
//! verified context. Their moves rely on the application's pause alone: run moves of shared
//! tenants when every instance reaches Redis.
//!
//! What the fence takes away is captured once, in the move's row (`fence`), before it is
//! applied, so a crash halfway is finished by running the fence again and undone from the
//! capture.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use sqlx::types::Json;
use tenant_manager_core::{Entity, Isolation, MoveId, Result, Tenant};

use crate::ident::{quote_ident, quote_literal};
use crate::pg::{self, SqlxResultExt};
use crate::storage::{Target, TenantStorage};

/// Privileges the fence takes from the app login on a schema tenant's tables.
const WRITES: [&str; 4] = ["INSERT", "UPDATE", "DELETE", "TRUNCATE"];

/// What the fence took away, as captured before it was applied.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Capture {
    /// The app login's write privileges on each table of the schema (table name -> privileges).
    Schema {
        app: String,
        grants: BTreeMap<String, Vec<String>>,
    },
    /// The previous `default_transaction_read_only` of the tenant's role and database (`None`:
    /// not set).
    Database {
        role: Option<String>,
        database: Option<String>,
    },
}

/// The capture recorded on the move, if any.
async fn recorded(storage: &TenantStorage, id: MoveId) -> Result<Option<Capture>> {
    let row: Option<Option<Json<Capture>>> =
        sqlx::query_scalar("SELECT fence FROM tm_tenant_moves WHERE id = $1")
            .bind(id.as_uuid())
            .fetch_optional(&storage.global)
            .await
            .map_db(Entity::Tenant)?;
    Ok(row.flatten().map(|Json(c)| c))
}

/// Records `capture` unless one is recorded already (the first capture is the state before
/// the fence); returns the recorded one.
async fn keep(storage: &TenantStorage, id: MoveId, capture: Capture) -> Result<Capture> {
    let Json(kept): Json<Capture> = sqlx::query_scalar(
        "UPDATE tm_tenant_moves SET fence = coalesce(fence, $2), updated_at = now() \
         WHERE id = $1 RETURNING fence",
    )
    .bind(id.as_uuid())
    .bind(Json(capture))
    .fetch_one(&storage.global)
    .await
    .map_db(Entity::Tenant)?;
    Ok(kept)
}

/// Records whether the fence is in place.
async fn mark(storage: &TenantStorage, id: MoveId, fenced: bool) -> Result<()> {
    sqlx::query("UPDATE tm_tenant_moves SET fenced = $2, updated_at = now() WHERE id = $1")
        .bind(id.as_uuid())
        .bind(fenced)
        .execute(&storage.global)
        .await
        .map_db(Entity::Tenant)?;
    Ok(())
}

/// Fences the tenant's storage at its placement for move `id`. Idempotent.
pub(crate) async fn apply(storage: &TenantStorage, id: MoveId, tenant: &Tenant) -> Result<()> {
    let target = storage.target(tenant)?;
    match target.isolation {
        Isolation::Shared => return Ok(()),
        Isolation::Schema => {
            let Some(app) = storage.settings.app_login.clone() else {
                // Without an app login, the tenant's pool connects as its own role, which
                // owns its tables: nothing to take away from anyone else.
                return Ok(());
            };
            let mut conn = storage.connect(&target.server, &target.database).await?;
            let fenced = async {
                let grants = schema_grants(&mut conn, &target, app.as_str()).await?;
                let capture = Capture::Schema {
                    app: app.as_str().to_owned(),
                    grants,
                };
                let Capture::Schema { grants, .. } = keep(storage, id, capture).await? else {
                    return Err(tenant_manager_core::Error::internal(
                        "a move's fence of another isolation",
                    ));
                };
                let privileges = WRITES.join(", ");
                let mut sql = String::new();
                for table in grants.keys() {
                    sql.push_str(&format!(
                        "REVOKE {privileges} ON TABLE {}.{} FROM {app};",
                        schema_of(&target)?,
                        quote_ident(table)
                    ));
                }
                if !sql.is_empty() {
                    pg::ddl(&mut conn, sql).await?;
                }
                Ok(())
            }
            .await;
            pg::close(conn).await;
            fenced?;
        }
        Isolation::Database => {
            let mut conn = storage.connect_maintenance(&target.server).await?;
            let fenced = async {
                let capture = database_settings(&mut conn, &target).await?;
                keep(storage, id, capture).await?;
                let role = target.role()?;
                let db = &target.database;
                pg::ddl(
                    &mut conn,
                    format!(
                        "ALTER ROLE {role} SET default_transaction_read_only = on; \
                         ALTER DATABASE {db} SET default_transaction_read_only = on"
                    ),
                )
                .await?;
                terminate(&mut conn, &target).await
            }
            .await;
            pg::close(conn).await;
            fenced?;
        }
    }
    mark(storage, id, true).await
}

/// Lifts the fence of move `id` from the tenant's storage at its placement, giving back what
/// was captured. Idempotent; nothing to do when no fence was captured.
pub(crate) async fn lift(storage: &TenantStorage, id: MoveId, tenant: &Tenant) -> Result<()> {
    let Some(capture) = recorded(storage, id).await? else {
        return Ok(());
    };
    let target = storage.target(tenant)?;
    match capture {
        Capture::Schema { app, grants } => {
            let Some(mut conn) = storage
                .connect_existing(&target.server, &target.database)
                .await?
            else {
                return mark(storage, id, false).await;
            };
            let lifted = async {
                let schema = schema_of(&target)?;
                let mut sql = String::new();
                for (table, privileges) in &grants {
                    let privileges: Vec<&str> = privileges
                        .iter()
                        .map(String::as_str)
                        .filter(|p| WRITES.contains(p))
                        .collect();
                    if privileges.is_empty() {
                        continue;
                    }
                    // A table gone since (the schema dropped) is skipped.
                    sql.push_str(&format!(
                        "IF to_regclass({}) IS NOT NULL THEN \
                           EXECUTE {}; END IF;",
                        quote_literal(&format!("{schema}.{}", quote_ident(table))),
                        quote_literal(&format!(
                            "GRANT {} ON TABLE {schema}.{} TO {}",
                            privileges.join(", "),
                            quote_ident(table),
                            quote_ident(&app)
                        )),
                    ));
                }
                if !sql.is_empty() {
                    pg::ddl(&mut conn, format!("DO $lift$ BEGIN {sql} END $lift$")).await?;
                }
                Ok(())
            }
            .await;
            pg::close(conn).await;
            lifted?;
        }
        Capture::Database { role, database } => {
            let mut conn = storage.connect_maintenance(&target.server).await?;
            let lifted = async {
                let setting = |value: &Option<String>| match value {
                    Some(v) => format!("SET default_transaction_read_only = {}", quote_literal(v)),
                    None => "RESET default_transaction_read_only".to_owned(),
                };
                let role_ident = target.role()?;
                let db = &target.database;
                // Either may be gone (a cancelled move's source is never dropped, but be safe).
                if pg::role_exists(&mut conn, role_ident).await? {
                    pg::ddl(
                        &mut conn,
                        format!("ALTER ROLE {role_ident} {}", setting(&role)),
                    )
                    .await?;
                }
                let db_exists: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
                )
                .bind(db.as_str())
                .fetch_one(&mut conn)
                .await
                .map_db(Entity::Tenant)?;
                if db_exists {
                    pg::ddl(
                        &mut conn,
                        format!("ALTER DATABASE {db} {}", setting(&database)),
                    )
                    .await?;
                }
                // Sessions opened during the fence are read-only until they reconnect.
                terminate(&mut conn, &target).await
            }
            .await;
            pg::close(conn).await;
            lifted?;
        }
    }
    mark(storage, id, false).await
}

/// The quoted schema of a schema tenant.
fn schema_of(target: &Target) -> Result<String> {
    target
        .schema
        .as_ref()
        .map(|s| s.quoted())
        .ok_or_else(|| tenant_manager_core::Error::internal("schema tenant without a schema"))
}

/// The app login's direct write privileges on each table of the tenant's schema.
async fn schema_grants(
    conn: &mut PgConnection,
    target: &Target,
    app: &str,
) -> Result<BTreeMap<String, Vec<String>>> {
    let schema =
        target.schema.as_ref().map(|s| s.as_str()).ok_or_else(|| {
            tenant_manager_core::Error::internal("schema tenant without a schema")
        })?;
    let rows: Vec<(String, Vec<String>)> = sqlx::query_as(
        "SELECT c.relname::text, \
             coalesce(array_agg(a.privilege_type ORDER BY a.privilege_type) \
                 FILTER (WHERE a.privilege_type IS NOT NULL), '{}') \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN LATERAL aclexplode(c.relacl) a \
           ON a.grantee = (SELECT oid FROM pg_roles WHERE rolname = $2) \
          AND a.privilege_type = ANY($3) \
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') \
         GROUP BY c.relname ORDER BY 1",
    )
    .bind(schema)
    .bind(app)
    .bind(WRITES.map(str::to_owned).to_vec())
    .fetch_all(&mut *conn)
    .await
    .map_db(Entity::Tenant)?;
    Ok(rows.into_iter().collect())
}

/// The current `default_transaction_read_only` of the tenant's role and database.
async fn database_settings(conn: &mut PgConnection, target: &Target) -> Result<Capture> {
    let (role, database): (Option<String>, Option<String>) = sqlx::query_as(
        "SELECT \
           (SELECT split_part(c, '=', 2) FROM pg_db_role_setting s, unnest(s.setconfig) c \
             WHERE s.setdatabase = 0 AND s.setrole = (SELECT oid FROM pg_roles WHERE rolname = $1) \
               AND c LIKE 'default\\_transaction\\_read\\_only=%'), \
           (SELECT split_part(c, '=', 2) FROM pg_db_role_setting s, unnest(s.setconfig) c \
             WHERE s.setrole = 0 AND s.setdatabase = (SELECT oid FROM pg_database WHERE datname = $2) \
               AND c LIKE 'default\\_transaction\\_read\\_only=%')",
    )
    .bind(target.role()?.as_str())
    .bind(target.database.as_str())
    .fetch_one(&mut *conn)
    .await
    .map_db(Entity::Tenant)?;
    Ok(Capture::Database { role, database })
}

/// Ends every other session on the tenant's database.
async fn terminate(conn: &mut PgConnection, target: &Target) -> Result<()> {
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(target.database.as_str())
    .execute(&mut *conn)
    .await
    .map_db(Entity::Tenant)?;
    Ok(())
}
