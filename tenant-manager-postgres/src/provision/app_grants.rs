//! The app login's role and grants (see [`crate::app_login`]).
//!
//! | statement | when |
//! |---|---|
//! | `CREATE ROLE <app> NOLOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS` + marker comment | provisioning a schema or shared tenant finds no such role |
//! | `CREATE`/`ALTER ROLE <app> LOGIN PASSWORD '<SCRAM verifier>' NOINHERIT ...` (same attributes) | [`crate::PostgresProvisioner::ensure_app_login`] |
//! | `CONNECT` on the database, `USAGE` on the schema, table and sequence privileges and default privileges of the tenant role (never membership; an old membership is revoked) | schema tenant's `storage_created` step; `WallAdmin::install` |
//! | `REVOKE <tenant role> FROM <app>` (a membership granted by a version before the wall) | schema tenant's deprovisioning and `storage_created` |
//! | `GRANT CONNECT ON DATABASE`, `USAGE ON SCHEMA <shared>`, `SELECT, INSERT, UPDATE, DELETE` on the shared owner's tables (`USAGE, SELECT` on its sequences), the same as `ALTER DEFAULT PRIVILEGES FOR ROLE <shared owner>`; `REVOKE ALL ON _sqlx_migrations` | shared tenant's `storage_created` and `migrated` steps; backfill |

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::{Connection, PgConnection};
use tenant_manager_core::{Entity, Error, Isolation, Placement, Result, ServerId, TenantSlug};

use super::admin::{self, Marked, UNPRIVILEGED};
use super::lock::lock_key;
use super::scram;
use crate::app_login::AppLogin;
use crate::error::SqlxResultExt;
use crate::ident::{Ident, quote_ident, quote_literal};
use crate::storage::TenantStorage;

/// Marker of the app login role.
pub(crate) const APP_LOGIN_MARKER: &str = "tenant-manager:app-login";

/// The migration history of the shared tables: the app login may not touch it.
const MIGRATION_HISTORY: &str = "_sqlx_migrations";

fn marked(app: &Ident) -> Marked<'_> {
    Marked {
        role: app,
        marker: APP_LOGIN_MARKER,
        field: "app_login",
    }
}

/// What [`crate::PostgresProvisioner::ensure_app_login`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct AppLoginReport {
    /// Servers whose app login role was created or brought up to date.
    pub servers: usize,
    /// Databases of schema or shared tenants whose grants were checked.
    pub databases: usize,
}

/// Ensures the app login role exists on the connected server, creating it `NOLOGIN` (no
/// password yet) when missing; a marked role is left as it is. Run outside a transaction.
pub(crate) async fn ensure_exists(conn: &mut PgConnection, app: &Ident) -> Result<()> {
    admin::ensure_marked_role(
        conn,
        &marked(app),
        &format!("NOLOGIN NOINHERIT {UNPRIVILEGED}"),
        None,
    )
    .await
}

/// Creates the app login on the connected server, or brings a marked one up to date: login
/// with `login`'s password (as a SCRAM verifier), no privilege of its own. Serialised across
/// instances by a session advisory lock; close the connection afterwards.
async fn ensure_login(conn: &mut PgConnection, login: &AppLogin) -> Result<()> {
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(lock_key("app-login", &[login.name()]))
        .execute(&mut *conn)
        .await
        .map_db(Entity::Tenant)?;
    let verifier = scram::verifier(login.password())?;
    let attributes = format!(
        "LOGIN PASSWORD {} NOINHERIT {UNPRIVILEGED}",
        quote_literal(verifier.expose())
    );
    admin::ensure_marked_role(conn, &marked(login.ident()), &attributes, Some(&attributes)).await?;
    reset_role_defaults(conn, login.name()).await
}

/// Drops every session default set on the app login (`ALTER ROLE ... [IN DATABASE ...] SET`),
/// which the login may set on itself: a default left by SQL injected in one session
/// (a `statement_timeout`, a `search_path`, a setting a policy reads) would reach every later
/// session of every tenant.
async fn reset_role_defaults(conn: &mut PgConnection, name: &str) -> Result<()> {
    let role = quote_literal(name);
    admin::ddl(
        conn,
        format!(
            "DO $reset$ DECLARE d text; BEGIN \
               EXECUTE format('ALTER ROLE %I RESET ALL', {role}); \
               FOR d IN SELECT db.datname FROM pg_catalog.pg_db_role_setting s \
                        JOIN pg_catalog.pg_database db ON db.oid = s.setdatabase \
                        WHERE s.setrole = {role}::regrole LOOP \
                 EXECUTE format('ALTER ROLE %I IN DATABASE %I RESET ALL', {role}, d); \
               END LOOP; END $reset$"
        ),
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
    admin::ddl(
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
        admin::ddl(conn, format!("REVOKE {role} FROM {app}")).await?;
    }
    Ok(())
}

/// Gives the app login the shared tables of the connected database: `CONNECT`, `USAGE` on the
/// shared schema, `SELECT, INSERT, UPDATE, DELETE` on the shared owner's tables and views and
/// `USAGE, SELECT` on its sequences, now and (default privileges) for those later migrations
/// create; nothing on the migration history. Never ownership, so forced row-level security
/// binds it. Run inside a transaction holding [`admin::lock_shared_database`].
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
    admin::ddl(conn, sql).await
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
/// and in a transaction holding [`admin::lock_shared_database`], when the database exists:
/// the shared tables ([`grant_shared`]) where `shared` tenants live, else `CONNECT` only.
/// Returns whether it did.
async fn grant_database(
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
        admin::lock_shared_database(&mut tx, database).await?;
        if shared {
            grant_shared(&mut tx, storage, database, app).await?;
        } else {
            admin::ddl(
                &mut tx,
                format!("GRANT CONNECT ON DATABASE {database} TO {app}"),
            )
            .await?;
        }
        tx.commit().await.map_db(Entity::Tenant)
    }
    .await;
    admin::close(conn).await;
    granted.map(|()| true)
}

/// The schema and shared tenants of one server whose storage exists, from the registry.
#[derive(Debug, Default)]
struct ServerTenants {
    /// Databases, and whether shared tenants live there.
    databases: BTreeMap<String, bool>,
}

async fn server_tenants(storage: &TenantStorage, server: &ServerId) -> Result<ServerTenants> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT t.isolation, t.database_name FROM tm_tenants t \
         WHERE t.server_id = $1 AND t.isolation IN ('schema', 'shared') \
           AND EXISTS (SELECT 1 FROM tm_provision_steps s \
                       WHERE s.tenant_id = t.id AND s.step = 'storage_created') \
         ORDER BY t.id",
    )
    .bind(server.as_str())
    .fetch_all(&storage.global)
    .await
    .map_db(Entity::Tenant)?;
    let mut found = ServerTenants::default();
    for (isolation, database) in rows {
        let entry = found.databases.entry(database).or_default();
        *entry |= isolation == "shared";
    }
    Ok(found)
}

/// The role of a schema tenant from its registry row ([`Placement::tenant_role`]).
pub(crate) fn schema_role(slug: &str, schema: Option<String>) -> Result<String> {
    let slug =
        TenantSlug::new(slug).map_err(|_| Error::internal("corrupt registry row: tenant slug"))?;
    let placement = Placement {
        server: ServerId::default_server(),
        database: String::new(),
        schema,
    };
    placement
        .tenant_role(&slug, Isolation::Schema)
        .ok_or_else(|| Error::internal("schema tenant without a role"))
}

/// Creates or updates the app login on every server of the map, then grants it what the
/// schema and shared tenants provisioned so far need (the backfill of tenants provisioned
/// before it existed). Idempotent.
pub(crate) async fn ensure(storage: &TenantStorage, login: &AppLogin) -> Result<AppLoginReport> {
    let app = match &storage.settings.app_login {
        Some(app) if app == login.ident() => app,
        Some(_) => {
            return Err(Error::invalid(
                "app_login",
                "must be the storage's app login (StorageConfig::app_login)",
            ));
        }
        None => {
            return Err(Error::invalid(
                "app_login",
                "the storage has no app login (StorageConfig::without_app_login)",
            ));
        }
    };
    let mut report = AppLoginReport::default();
    for server in storage.servers.ids() {
        let tenants = server_tenants(storage, server).await?;
        let mut conn = storage.connect_maintenance(server).await?;
        let ensured = ensure_login(&mut conn, login).await;
        // Closing the session also releases its advisory lock.
        admin::close(conn).await;
        ensured?;
        report.servers += 1;
        for (database, shared) in &tenants.databases {
            let database = Ident::new(database, "placement.database")?;
            let done = grant_database(storage, server, &database, app, *shared).await?;
            report.databases += usize::from(done);
        }
    }
    Ok(report)
}
