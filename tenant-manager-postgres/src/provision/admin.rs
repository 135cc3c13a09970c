//! Cluster administration statements: roles, databases, ownership markers.
//!
//! DDL takes no bind parameters, so every identifier here is an [`Ident`] (validated, quoted)
//! and every literal goes through [`quote_literal`].

use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgConnection};
use tenant_manager_core::{Entity, Error, Result, Secret, StorageNaming, TenantId};

use crate::error::SqlxResultExt;
use crate::ident::{Ident, quote_literal};

/// SQLSTATE `duplicate_database`.
const DUPLICATE_DATABASE: &str = "42P04";
/// SQLSTATE `duplicate_object` (a role that exists).
const DUPLICATE_OBJECT: &str = "42710";
/// SQLSTATE `unique_violation` (two sessions creating one role at once).
pub(crate) const UNIQUE_VIOLATION: &str = "23505";

/// The comment that marks a role, database or schema as a tenant's, so tenant-manager never
/// alters or drops an object it did not create.
pub(crate) fn tenant_marker(tenant: TenantId) -> String {
    format!("tenant-manager:tenant:{tenant}")
}

/// SQLSTATE `invalid_catalog_name`: the database does not exist.
const UNKNOWN_DATABASE: &str = "3D000";

/// Opens an admin connection without statement logging (DDL can carry password verifiers).
pub(crate) async fn connect(options: &PgConnectOptions) -> Result<PgConnection> {
    connect_raw(options).await.map_db(Entity::Tenant)
}

/// Like [`connect`], `None` when the database does not exist.
pub(crate) async fn connect_existing(options: &PgConnectOptions) -> Result<Option<PgConnection>> {
    match connect_raw(options).await {
        Ok(conn) => Ok(Some(conn)),
        Err(e) if has_state(&e, &[UNKNOWN_DATABASE]) => Ok(None),
        Err(e) => Err(crate::error::map_sqlx(Entity::Tenant, e)),
    }
}

async fn connect_raw(options: &PgConnectOptions) -> std::result::Result<PgConnection, sqlx::Error> {
    options
        .clone()
        .application_name("tenant-manager")
        .disable_statement_logging()
        .connect()
        .await
}

/// Closes a connection politely; a failure to say goodbye is not an error of the work done.
pub(crate) async fn close(conn: PgConnection) {
    let _ = conn.close().await;
}

/// Runs one or more DDL statements built from validated identifiers and quoted literals.
pub(crate) async fn ddl(conn: &mut PgConnection, sql: String) -> Result<()> {
    ddl_raw(conn, sql).await.map_db(Entity::Tenant)
}

/// [`ddl`] keeping the driver error, for callers that treat some SQLSTATEs as success.
pub(crate) async fn ddl_raw(
    conn: &mut PgConnection,
    sql: String,
) -> std::result::Result<(), sqlx::Error> {
    sqlx::raw_sql(AssertSqlSafe(sql))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Whether a driver error carries one of these SQLSTATEs.
pub(crate) fn has_state(err: &sqlx::Error, states: &[&str]) -> bool {
    match err {
        sqlx::Error::Database(db) => db.code().is_some_and(|c| states.contains(&c.as_ref())),
        _ => false,
    }
}

/// The marker comment of a role, `None` when the role does not exist.
pub(crate) async fn role_comment(
    conn: &mut PgConnection,
    role: &Ident,
) -> Result<Option<Option<String>>> {
    let row: Option<(Option<String>,)> = sqlx::query_as(
        "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1",
    )
    .bind(role.as_str())
    .fetch_optional(conn)
    .await
    .map_db(Entity::Tenant)?;
    Ok(row.map(|(c,)| c))
}

/// Attributes of every role tenant-manager creates: none that escalates.
pub(crate) const UNPRIVILEGED: &str =
    "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS";

/// How a role may log in.
#[derive(Debug)]
pub(crate) enum Login<'a> {
    /// A login role with this SCRAM verifier as password.
    Password(&'a Secret),
    /// No login: a role that only owns objects.
    None,
}

impl Login<'_> {
    /// The `LOGIN PASSWORD '...'` or `NOLOGIN` clause.
    pub(crate) fn clause(&self) -> String {
        match self {
            Login::Password(verifier) => {
                format!("LOGIN PASSWORD {}", quote_literal(verifier.expose()))
            }
            Login::None => "NOLOGIN".to_owned(),
        }
    }
}

/// Creates the role marked `marker`, or brings an existing one with that marker up to date.
/// A role of that name without the marker belongs to someone else: `Conflict` on `role`.
pub(crate) async fn ensure_role(
    conn: &mut PgConnection,
    role: &Ident,
    marker: &str,
    login: Login<'_>,
) -> Result<()> {
    let login_clause = login.clause();
    let marked = Marked {
        role,
        marker,
        field: "role",
    };
    ensure_marked_role(
        conn,
        &marked,
        &format!("{login_clause} {UNPRIVILEGED}"),
        Some(&login_clause),
    )
    .await
}

/// A role tenant-manager manages: its name, the marker comment that says so, and the field a
/// `Conflict` names when a role of that name is not marked so.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Marked<'a> {
    /// The role.
    pub(crate) role: &'a Ident,
    /// Its marker comment.
    pub(crate) marker: &'a str,
    /// The field of a `Conflict`.
    pub(crate) field: &'static str,
}

/// Creates `marked.role` with `attributes` and its marker, or, when it exists with the marker,
/// applies `alter` to it (nothing when `None`). A role of that name without the marker belongs
/// to someone else and is left alone: `Conflict` on `marked.field`. Runs outside a transaction
/// (a concurrent creation is retried).
pub(crate) async fn ensure_marked_role(
    conn: &mut PgConnection,
    marked: &Marked<'_>,
    attributes: &str,
    alter: Option<&str>,
) -> Result<()> {
    let Marked {
        role,
        marker,
        field,
    } = *marked;
    for _ in 0..2 {
        match role_comment(conn, role).await? {
            Some(Some(existing)) if existing == marker => {
                return match alter {
                    Some(alter) => ddl(conn, format!("ALTER ROLE {role} {alter}")).await,
                    None => Ok(()),
                };
            }
            Some(_) => {
                return Err(Error::conflict(
                    Entity::Tenant,
                    field,
                    format!(
                        "role {} exists and is not managed by tenant-manager",
                        role.as_str()
                    ),
                ));
            }
            None => {
                let sql = format!(
                    "CREATE ROLE {role} {attributes}; COMMENT ON ROLE {role} IS {}",
                    quote_literal(marker)
                );
                match ddl_raw(conn, sql).await {
                    Ok(()) => return Ok(()),
                    // Another session created it first: look again.
                    Err(e) if has_state(&e, &[DUPLICATE_OBJECT, UNIQUE_VIOLATION]) => {}
                    Err(e) => return Err(crate::error::map_sqlx(Entity::Tenant, e)),
                }
            }
        }
    }
    Err(Error::conflict(
        Entity::Tenant,
        field,
        "role is being created concurrently",
    ))
}

/// Drops a role marked `marker` after ending its sessions; a missing role is fine, an
/// unmarked one is left alone (`Conflict`).
pub(crate) async fn drop_role(conn: &mut PgConnection, role: &Ident, marker: &str) -> Result<()> {
    match role_comment(conn, role).await? {
        None => Ok(()),
        Some(Some(existing)) if existing == marker => {
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE usename = $1 AND pid <> pg_backend_pid()",
            )
            .bind(role.as_str())
            .execute(&mut *conn)
            .await
            .map_db(Entity::Tenant)?;
            ddl(conn, format!("DROP ROLE IF EXISTS {role}")).await
        }
        Some(_) => Err(Error::conflict(
            Entity::Tenant,
            "role",
            format!("role {} is not managed by tenant-manager", role.as_str()),
        )),
    }
}

/// Owner name and comment of a database, `None` when it does not exist.
pub(crate) async fn database_info(
    conn: &mut PgConnection,
    database: &Ident,
) -> Result<Option<(String, Option<String>)>> {
    sqlx::query_as(
        "SELECT pg_get_userbyid(datdba)::text, shobj_description(oid, 'pg_database') \
         FROM pg_database WHERE datname = $1",
    )
    .bind(database.as_str())
    .fetch_optional(conn)
    .await
    .map_db(Entity::Tenant)
}

/// `CREATE DATABASE` (which cannot run in a transaction). Returns `false` when it existed.
pub(crate) async fn create_database(
    conn: &mut PgConnection,
    database: &Ident,
    owner: Option<&Ident>,
    template: Option<&Ident>,
) -> Result<bool> {
    let mut sql = format!("CREATE DATABASE {database}");
    if let Some(owner) = owner {
        sql.push_str(&format!(" OWNER {owner}"));
    }
    if let Some(template) = template {
        sql.push_str(&format!(" TEMPLATE {template}"));
    }
    match ddl_raw(conn, sql).await {
        Ok(()) => Ok(true),
        Err(e) if has_state(&e, &[DUPLICATE_DATABASE, UNIQUE_VIOLATION]) => Ok(false),
        Err(e) => Err(crate::error::map_sqlx(Entity::Tenant, e)),
    }
}

/// The comment that marked shared databases before storage prefixes; a database marked so
/// is claimed by [`crate::TenantStorage::claim_legacy_shared_databases`].
pub(crate) const LEGACY_SHARED_MARKER: &str = "tenant-manager:shared";

/// The comment that marks a database shared by tenants as one deployment's.
pub(crate) fn shared_marker(naming: &StorageNaming) -> String {
    format!("{LEGACY_SHARED_MARKER}:{}", naming.prefix())
}

/// Ensures a database shared by several tenants exists: created owned by the admin, marked
/// `marker`, closed to `PUBLIC` (no `CONNECT`, no `TEMPORARY`; each tenant role and the app
/// login are granted `CONNECT` separately). An existing database is left as it is (callers
/// check its marker).
pub(crate) async fn ensure_shared_database(
    conn: &mut PgConnection,
    database: &Ident,
    marker: &str,
) -> Result<()> {
    if database_info(conn, database).await?.is_some() {
        return Ok(());
    }
    if create_database(conn, database, None, None).await? {
        mark_shared_database(conn, database, marker).await?;
    }
    Ok(())
}

/// Marks a shared database with `marker` and closes it to `PUBLIC`.
pub(crate) async fn mark_shared_database(
    conn: &mut PgConnection,
    database: &Ident,
    marker: &str,
) -> Result<()> {
    ddl(
        conn,
        format!(
            "COMMENT ON DATABASE {database} IS {}; \
             REVOKE ALL ON DATABASE {database} FROM PUBLIC",
            quote_literal(marker)
        ),
    )
    .await
}

/// The comment of the connected database.
pub(crate) async fn current_database_comment(conn: &mut PgConnection) -> Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database \
         WHERE datname = current_database()",
    )
    .fetch_one(conn)
    .await
    .map_db(Entity::Tenant)
}

/// The error for a shared database whose marker is not this deployment's.
pub(crate) fn foreign_shared_database(database: &Ident, comment: Option<&str>) -> Error {
    let why = match comment {
        Some(LEGACY_SHARED_MARKER) => {
            "is marked as a shared database of an older version without a storage prefix: \
             claim it with `tenant-cli migrate claim-shared` (TenantStorage::\
             claim_legacy_shared_databases)"
        }
        Some(c) if c.starts_with("tenant-manager:shared:") => {
            "is the shared database of another deployment (another storage prefix)"
        }
        _ => "exists and is not a shared database of tenant-manager",
    };
    Error::conflict(
        Entity::Tenant,
        "placement.database",
        format!("database {} {why}", database.as_str()),
    )
}

/// Owner and comment of a schema in the connected database, `None` when it does not exist.
pub(crate) async fn schema_info(
    conn: &mut PgConnection,
    schema: &Ident,
) -> Result<Option<(String, Option<String>)>> {
    sqlx::query_as(
        "SELECT pg_get_userbyid(nspowner)::text, obj_description(oid, 'pg_namespace') \
         FROM pg_namespace WHERE nspname = $1",
    )
    .bind(schema.as_str())
    .fetch_optional(conn)
    .await
    .map_db(Entity::Tenant)
}

/// Serialises changes to the catalogue rows of a database shared by tenants (its ACL, the
/// shared schema, the shared owner role) until the current transaction ends: concurrent
/// `GRANT`s on one object otherwise fail with "tuple concurrently updated".
pub(crate) async fn lock_shared_database(conn: &mut PgConnection, database: &Ident) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(super::lock::lock_key(
            "shared-database",
            &[database.as_str()],
        ))
        .execute(conn)
        .await
        .map_db(Entity::Tenant)?;
    Ok(())
}
