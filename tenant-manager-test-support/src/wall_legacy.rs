//! A deployment as the release before the tenant wall left it, rebuilt from one provisioned
//! with the wall: what the wall's upgrade test and bench start from.

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

/// Name of the policy the wall puts on every tenant table.
const WALL_POLICY: &str = "tenant_wall";

/// Comment the provisioner puts on a schema tenant's schema (the tenant id follows).
const TENANT_MARKER: &str = "tenant-manager:tenant:";

/// What the release before the wall used on shared tables: the tenant in `app.tenant_id`, a
/// setting any session may set, as the shared migrations of the Postgres adapter's tests
/// write it (`tests/migrations/shared`).
const LEGACY_PREDICATE: &str =
    "tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid";

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Converts a deployment provisioned with the tenant wall to the layout the release before
/// the wall left, as its admin (superuser) at `admin_url`. In each of `databases` (those of
/// its schema and shared tenants), in one transaction:
///
/// - every schema tenant (a schema commented `tenant-manager:tenant:<id>`, owned by the
///   tenant's role): its tables lose the `tenant_wall` policy and row-level security
///   (`NO FORCE`, `DISABLE`: that release had none on tenant schemas); the app login `app`
///   loses its direct privileges (on the schema, its tables and sequences, and the tenant
///   role's default privileges there) and becomes a member of the tenant's role instead
///   (`GRANT <role> TO <app>`: checkouts `SET ROLE`);
/// - every other table with a `tenant_wall` policy (the shared tables): the policy is replaced
///   by `<table>_tenant_isolation` on `app.tenant_id`, the policy of the shared migrations of
///   that release; forced row-level security stays, as that release required;
/// - schemas `wall` and `wall_private` are dropped with everything in them (the wall's grants
///   to tenant roles and to the shared owner go with them).
///
/// Then the wall's owner role `wall_owner` is dropped (that release had none): it is a
/// cluster-wide role, so give only a deployment's own, used by no other database.
///
/// The app login's `CONNECT` on the databases and its grants on the shared tables stay: both
/// releases give them alike.
///
/// # Panics
/// When a statement fails (a test helper).
pub async fn legacy_layout(admin_url: &str, databases: &[&str], app: &str, wall_owner: &str) {
    let app_q = quote(app);
    for database in databases {
        let mut conn = PgConnection::connect_with(&database_options(admin_url, database))
            .await
            .expect("admin connection to a tenant database");
        let schemas: Vec<(String, String)> = sqlx::query_as(
            "SELECT n.nspname::text, pg_catalog.pg_get_userbyid(n.nspowner)::text \
             FROM pg_catalog.pg_namespace n \
             WHERE pg_catalog.obj_description(n.oid, 'pg_namespace') LIKE $1 || '%' \
             ORDER BY 1",
        )
        .bind(TENANT_MARKER)
        .fetch_all(&mut conn)
        .await
        .expect("tenant schemas");
        let tables: Vec<(String, String, bool)> = sqlx::query_as(
            "SELECT n.nspname::text, c.relname::text, \
                    EXISTS (SELECT 1 FROM pg_catalog.pg_policy p \
                            WHERE p.polrelid = c.oid AND p.polname = $1) \
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
               AND n.nspname NOT LIKE 'pg_toast%' \
             ORDER BY 1, 2",
        )
        .bind(WALL_POLICY)
        .fetch_all(&mut conn)
        .await
        .expect("tables");
        let mut sql = String::new();
        for (schema, table, walled) in &tables {
            let qualified = format!("{}.{}", quote(schema), quote(table));
            let tenant_schema = schemas.iter().any(|(s, _)| s == schema);
            if *walled {
                sql.push_str(&format!("DROP POLICY {WALL_POLICY} ON {qualified}; "));
            }
            if tenant_schema {
                sql.push_str(&format!(
                    "ALTER TABLE {qualified} NO FORCE ROW LEVEL SECURITY, \
                     DISABLE ROW LEVEL SECURITY; "
                ));
            } else if *walled {
                sql.push_str(&format!(
                    "CREATE POLICY {} ON {qualified} USING ({LEGACY_PREDICATE}) \
                     WITH CHECK ({LEGACY_PREDICATE}); ",
                    quote(&format!("{table}_tenant_isolation"))
                ));
            }
        }
        for (schema, role) in &schemas {
            let (schema, role) = (quote(schema), quote(role));
            sql.push_str(&format!(
                "REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {app_q}; \
                 REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM {app_q}; \
                 REVOKE ALL ON SCHEMA {schema} FROM {app_q}; \
                 ALTER DEFAULT PRIVILEGES FOR ROLE {role} IN SCHEMA {schema} \
                     REVOKE ALL ON TABLES FROM {app_q}; \
                 ALTER DEFAULT PRIVILEGES FOR ROLE {role} IN SCHEMA {schema} \
                     REVOKE ALL ON SEQUENCES FROM {app_q}; \
                 GRANT {role} TO {app_q}; "
            ));
        }
        sql.push_str("DROP SCHEMA IF EXISTS wall, wall_private CASCADE;");
        let mut tx = conn.begin().await.expect("begin");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await
            .expect("convert to the layout before the wall");
        tx.commit().await.expect("commit");
        let _ = conn.close().await;
    }
    let mut conn = PgConnection::connect(admin_url)
        .await
        .expect("admin connection");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP ROLE IF EXISTS {}; DROP ROLE IF EXISTS {}",
        quote(wall_owner),
        quote(&format!("{wall_owner}_reader"))
    )))
    .execute(&mut conn)
    .await
    .expect("drop the wall's roles");
    let _ = conn.close().await;
}

/// `admin_url`'s options with its database replaced by `database`.
fn database_options(admin_url: &str, database: &str) -> PgConnectOptions {
    PgConnectOptions::from_str(admin_url)
        .expect("admin url")
        .database(database)
}
