//! The app login's access to the tables behind the wall (see [`crate::app_login`]): granted
//! directly, never through membership of a tenant role, never ownership, so the wall's forced
//! row-level security binds it.
//!
//! | statement | when |
//! |---|---|
//! | `CREATE ROLE <app> NOLOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS` + marker comment | provisioning a schema or shared tenant finds no such role |
//! | `CONNECT` on the database, `USAGE` on the schema, table and sequence privileges and default privileges of the tenant role (never membership; an old membership is revoked) | schema tenant's `storage_created` step; `WallAdmin::install` |
//! | `REVOKE <tenant role> FROM <app>` (a membership granted by a version before the wall) | schema tenant's deprovisioning and `storage_created` |
//! | `GRANT CONNECT ON DATABASE`, `USAGE ON SCHEMA <shared>`, `SELECT, INSERT, UPDATE, DELETE` on the shared owner's tables (`USAGE, SELECT` on its sequences), the same as `ALTER DEFAULT PRIVILEGES FOR ROLE <shared owner>`; `REVOKE ALL ON _sqlx_migrations` | shared tenant's `storage_created` and `migrated` steps; backfill |

use sqlx::{Connection, PgConnection};
use tenant_manager_core::{Entity, Result, ServerId};

use crate::ident::{Ident, quote_ident};
use crate::pg::{self, Marked, SqlxResultExt, UNPRIVILEGED};
use crate::storage::TenantStorage;

/// Marker of the app login role.
pub(crate) const APP_LOGIN_MARKER: &str = "tenant-manager:app-login";

/// The migration history of the shared tables: the app login may not touch it.
const MIGRATION_HISTORY: &str = "_sqlx_migrations";

/// The app login as a marked role.
pub(crate) fn app_login_marked(app: &Ident) -> Marked<'_> {
    Marked {
        role: app,
        marker: APP_LOGIN_MARKER,
        field: "app_login",
    }
}

/// Ensures the app login role exists on the connected server, creating it `NOLOGIN` (no
/// password yet) when missing; a marked role is left as it is. Run outside a transaction.
pub(crate) async fn ensure_app_login_role(conn: &mut PgConnection, app: &Ident) -> Result<()> {
    pg::ensure_marked_role(
        conn,
        &app_login_marked(app),
        &format!("NOLOGIN NOINHERIT {UNPRIVILEGED}"),
        None,
    )
    .await
}

/// Gives the app login a schema tenant's tables directly (it is a member of no tenant role):
/// `CONNECT` on the database, `USAGE` on the schema, `SELECT, INSERT, UPDATE, DELETE` on its
/// tables and `USAGE, SELECT` on its sequences, now and (default privileges of the tenant
/// role) for those later migrations create. Takes back a membership an older version granted.
/// The wall's policies decide which rows it sees; the migrator keeps the migration history
/// out of its reach.
pub(crate) async fn grant_schema_direct(
    conn: &mut PgConnection,
    app: &Ident,
    role: &Ident,
    schema: &Ident,
    database: &Ident,
) -> Result<()> {
    revoke_schema_tenant(conn, app, role).await?;
    pg::ddl(
        conn,
        format!(
            "GRANT CONNECT ON DATABASE {database} TO {app}; \
             GRANT USAGE ON SCHEMA {schema} TO {app}; \
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {app}; \
             GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {app}; \
             ALTER DEFAULT PRIVILEGES FOR ROLE {role} IN SCHEMA {schema} \
                 GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app}; \
             ALTER DEFAULT PRIVILEGES FOR ROLE {role} IN SCHEMA {schema} \
                 GRANT USAGE, SELECT ON SEQUENCES TO {app}"
        ),
    )
    .await
}

/// Takes a schema tenant's role from the app login (nothing when either is missing).
pub(crate) async fn revoke_schema_tenant(
    conn: &mut PgConnection,
    app: &Ident,
    role: &Ident,
) -> Result<()> {
    let member: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_auth_members m \
           JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles a ON a.oid = m.member \
           WHERE r.rolname = $1 AND a.rolname = $2)",
    )
    .bind(role.as_str())
    .bind(app.as_str())
    .fetch_one(&mut *conn)
    .await
    .map_db(Entity::Tenant)?;
    if member {
        pg::ddl(conn, format!("REVOKE {role} FROM {app}")).await?;
    }
    Ok(())
}

/// Gives the app login the shared tables of the connected database: `CONNECT`, `USAGE` on the
/// shared schema, `SELECT, INSERT, UPDATE, DELETE` on the shared owner's tables and views and
/// `USAGE, SELECT` on its sequences, now and (default privileges) for those later migrations
/// create; nothing on the migration history. Never ownership, so forced row-level security
/// binds it. Run inside a transaction holding [`pg::lock_shared_database`].
pub(crate) async fn grant_shared(
    conn: &mut PgConnection,
    storage: &TenantStorage,
    database: &Ident,
    app: &Ident,
) -> Result<()> {
    let owner = &storage.settings.shared_owner;
    let schema = &storage.settings.shared_schema;
    let mut sql = format!(
        "GRANT CONNECT ON DATABASE {database} TO {app}; \
         GRANT USAGE ON SCHEMA {schema} TO {app}; \
         ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema} \
             GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app}; \
         ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema} \
             GRANT USAGE, SELECT ON SEQUENCES TO {app};"
    );
    let relations: Vec<(String, bool)> = sqlx::query_as(
        "SELECT c.relname::text, c.relkind = 'S' FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_roles o ON o.oid = c.relowner \
         WHERE n.nspname = $1 AND o.rolname = $2 AND c.relkind IN ('r', 'p', 'v', 'S') \
         ORDER BY c.relname",
    )
    .bind(schema.as_str())
    .bind(owner.as_str())
    .fetch_all(&mut *conn)
    .await
    .map_db(Entity::Tenant)?;
    let qualified = |name: &str| format!("{schema}.{}", quote_ident(name));
    let (sequences, tables): (Vec<_>, Vec<_>) = relations.iter().partition(|(_, seq)| *seq);
    let tables: Vec<String> = tables
        .iter()
        .filter(|(name, _)| name != MIGRATION_HISTORY)
        .map(|(name, _)| qualified(name))
        .collect();
    let sequences: Vec<String> = sequences.iter().map(|(name, _)| qualified(name)).collect();
    if !tables.is_empty() {
        sql.push_str(&format!(
            " GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {} TO {app};",
            tables.join(", ")
        ));
    }
    if !sequences.is_empty() {
        sql.push_str(&format!(
            " GRANT USAGE, SELECT ON SEQUENCE {} TO {app};",
            sequences.join(", ")
        ));
    }
    if relations.iter().any(|(name, _)| name == MIGRATION_HISTORY) {
        sql.push_str(&format!(
            " REVOKE ALL ON TABLE {} FROM {app};",
            qualified(MIGRATION_HISTORY)
        ));
    }
    pg::ddl(conn, sql).await
}

/// [`grant_shared`] on its own connection and transaction, when `database` exists. Returns
/// whether it did.
pub(crate) async fn grant_shared_database(
    storage: &TenantStorage,
    server: &ServerId,
    database: &Ident,
    app: &Ident,
) -> Result<bool> {
    grant_database(storage, server, database, app, true).await
}

/// What the app login gets on a database of schema or shared tenants, on its own connection
/// and in a transaction holding [`pg::lock_shared_database`], when the database exists:
/// the shared tables ([`grant_shared`]) where `shared` tenants live, else `CONNECT` only.
/// Returns whether it did.
pub(crate) async fn grant_database(
    storage: &TenantStorage,
    server: &ServerId,
    database: &Ident,
    app: &Ident,
    shared: bool,
) -> Result<bool> {
    let Some(mut conn) = storage.connect_existing(server, database).await? else {
        return Ok(false);
    };
    let granted = async {
        let mut tx = conn.begin().await.map_db(Entity::Tenant)?;
        pg::lock_shared_database(&mut tx, database).await?;
        if shared {
            grant_shared(&mut tx, storage, database, app).await?;
        } else {
            pg::ddl(
                &mut tx,
                format!("GRANT CONNECT ON DATABASE {database} TO {app}"),
            )
            .await?;
        }
        tx.commit().await.map_db(Entity::Tenant)
    }
    .await;
    pg::close(conn).await;
    granted.map(|()| true)
}
