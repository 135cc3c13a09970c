//! Roles tenant-manager creates: unprivileged, and marked as its own by a comment, so it never
//! alters or drops a role it did not create.

use sqlx::PgConnection;
use tenant_manager_core::{Entity, Error, Result, Secret};

use super::conn::{ddl, ddl_raw};
use super::error::{SqlxResultExt, map_sqlx};
use super::sqlstate::{DUPLICATE_OBJECT, UNIQUE_VIOLATION, has_state};
use crate::ident::{Ident, quote_literal};

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
                    Err(e) => return Err(map_sqlx(Entity::Tenant, e)),
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

/// Whether a role of that name exists.
pub(crate) async fn role_exists(conn: &mut PgConnection, role: &Ident) -> Result<bool> {
    Ok(role_comment(conn, role).await?.is_some())
}
