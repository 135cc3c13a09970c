//! What the catalogue says about databases and schemas, and creating databases.

use sqlx::PgConnection;
use tenant_manager_core::{Entity, Result};

use super::conn::{ddl, ddl_raw};
use super::error::{SqlxResultExt, map_sqlx};
use super::sqlstate::{DUPLICATE_DATABASE, UNIQUE_VIOLATION, has_state};
use crate::ident::{Ident, quote_literal};

/// A kind of object [`describe`] looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Object {
    /// A database of the cluster.
    Database,
    /// A schema of the connected database.
    Schema,
}

/// The owner and marker comment of a database or schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Described {
    /// The owner role's name.
    pub(crate) owner: String,
    /// The comment, if any.
    pub(crate) comment: Option<String>,
}

impl Described {
    /// Whether the object belongs to `role`: it owns it, or it is marked `marker`.
    pub(crate) fn belongs_to(&self, role: &Ident, marker: &str) -> bool {
        self.owner == role.as_str() || self.comment.as_deref() == Some(marker)
    }
}

/// Owner and comment of a database (of the cluster) or a schema (of the connected database),
/// `None` when it does not exist.
pub(crate) async fn describe(
    conn: &mut PgConnection,
    object: Object,
    name: &Ident,
) -> Result<Option<Described>> {
    let sql = match object {
        Object::Database => {
            "SELECT pg_get_userbyid(datdba)::text, shobj_description(oid, 'pg_database') \
             FROM pg_database WHERE datname = $1"
        }
        Object::Schema => {
            "SELECT pg_get_userbyid(nspowner)::text, obj_description(oid, 'pg_namespace') \
             FROM pg_namespace WHERE nspname = $1"
        }
    };
    let row: Option<(String, Option<String>)> = sqlx::query_as(sql)
        .bind(name.as_str())
        .fetch_optional(conn)
        .await
        .map_db(Entity::Tenant)?;
    Ok(row.map(|(owner, comment)| Described { owner, comment }))
}

/// Whether a database or schema exists.
pub(crate) async fn exists(conn: &mut PgConnection, object: Object, name: &Ident) -> Result<bool> {
    Ok(describe(conn, object, name).await?.is_some())
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
        Err(e) => Err(map_sqlx(Entity::Tenant, e)),
    }
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
    if exists(conn, Object::Database, database).await? {
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
