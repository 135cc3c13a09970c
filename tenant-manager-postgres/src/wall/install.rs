//! Installing the wall in a database of schema or shared tenants, and its keys.

use sqlx::PgConnection;
use tenant_manager_core::{Entity, Error, Result};

use crate::credentials::WallKeys;
use crate::ident::{Ident, quote_ident};
use crate::pg::{self, INTERNAL_ERROR, Marked, SqlxResultExt, UNIQUE_VIOLATION};
use crate::storage::WallContext;

/// Marker comment of the wall owner role.
pub(crate) const WALL_OWNER_MARKER: &str = "tenant-manager:wall-owner";

/// Marker comment of the wall reader role.
pub(crate) const WALL_READER_MARKER: &str = "tenant-manager:wall-reader";

/// Comment on schema `wall` once this version of the wall is installed (v2: owners of walled
/// tables read the wall through the reader role instead of grants of their own).
pub(crate) const WALL_VERSION: &str = "tenant-manager:wall:v2";

const INSTALL: &str = include_str!("install.sql");

/// Ensures the wall owner role exists on the connected server: `NOLOGIN`, no privilege but
/// membership of `pg_read_all_stats` (its functions read the caller's `backend_start`), which
/// it inherits. Run outside a transaction; installs in several databases at once race on this
/// cluster-wide role, so a concurrent change is looked at again.
pub(crate) async fn ensure_owner(conn: &mut PgConnection, owner: &Ident) -> Result<()> {
    let marked = Marked {
        role: owner,
        marker: WALL_OWNER_MARKER,
        field: "wall_owner",
    };
    let attributes = format!("NOLOGIN INHERIT {}", pg::UNPRIVILEGED);
    pg::ensure_marked_role(conn, &marked, &attributes, None).await?;
    for _ in 0..3 {
        let (inherit, member): (bool, bool) = sqlx::query_as(
            "SELECT r.rolinherit, pg_has_role(r.oid, 'pg_read_all_stats', 'MEMBER') \
             FROM pg_roles r WHERE r.rolname = $1",
        )
        .bind(owner.as_str())
        .fetch_one(&mut *conn)
        .await
        .map_db(Entity::Tenant)?;
        let sql = match (inherit, member) {
            (true, true) => return Ok(()),
            (false, _) => format!("ALTER ROLE {owner} INHERIT"),
            (true, false) => format!("GRANT pg_read_all_stats TO {owner}"),
        };
        match pg::ddl_raw(conn, sql).await {
            Ok(()) => {}
            // Another install changed the role meanwhile: look again.
            Err(e) if pg::has_state(&e, &[UNIQUE_VIOLATION, INTERNAL_ERROR]) => {}
            Err(e) => return Err(pg::map_sqlx(Entity::Tenant, e)),
        }
    }
    Err(Error::conflict(
        Entity::Tenant,
        "wall_owner",
        "the wall owner role is being changed concurrently",
    ))
}

/// Ensures the wall's cluster-wide roles: the owner ([`ensure_owner`]) and the reader, a
/// `NOLOGIN NOINHERIT` role with no privilege but the wall's read grants in each database.
/// Run outside a transaction.
pub(crate) async fn ensure_roles(conn: &mut PgConnection, wall: WallContext<'_>) -> Result<()> {
    ensure_owner(conn, wall.owner).await?;
    let marked = Marked {
        role: wall.reader,
        marker: WALL_READER_MARKER,
        field: "wall_reader",
    };
    let attributes = format!("NOLOGIN NOINHERIT {}", pg::UNPRIVILEGED);
    pg::ensure_marked_role(conn, &marked, &attributes, None).await
}

/// Whether the connected database has this version of the wall.
pub(crate) async fn installed(conn: &mut PgConnection) -> Result<bool> {
    let comment: Option<String> = sqlx::query_scalar(
        "SELECT pg_catalog.obj_description(n.oid, 'pg_namespace') FROM pg_catalog.pg_namespace n \
         WHERE n.nspname = 'wall'",
    )
    .fetch_optional(&mut *conn)
    .await
    .map_db(Entity::Tenant)?
    .flatten();
    Ok(comment.as_deref() == Some(WALL_VERSION))
}

/// Installs the wall (schemas `wall` and `wall_private`, the key and verdict tables, the
/// functions, the app login's and the reader's grants) in the connected database when this
/// version is not there yet, and adds the signing key to the key table when missing. An
/// earlier version is upgraded in place, its owners' own grants moved to the reader role
/// ([`adopt_direct_readers`]). Run as a superuser inside a transaction that holds the
/// database's lock, after [`ensure_roles`].
pub(crate) async fn install(conn: &mut PgConnection, wall: WallContext<'_>) -> Result<()> {
    if !installed(conn).await? {
        let sql = INSTALL
            .replace("__OWNER__", &wall.owner.quoted())
            .replace("__APP__", &wall.app.quoted())
            .replace("__READER__", &wall.reader.quoted());
        pg::ddl(conn, sql).await?;
        adopt_direct_readers(conn, wall).await?;
    }
    add_key(conn, wall.keys).await.map(|_| ())
}

/// The roles other than the app login and the reader that hold the wall's read grants of
/// their own (owners of walled tables under version 1 of the wall).
async fn direct_readers(conn: &mut PgConnection, wall: WallContext<'_>) -> Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT DISTINCT r.rolname::text \
         FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a, pg_catalog.pg_roles r \
         WHERE c.oid = 'wall.session_token'::pg_catalog.regclass AND r.oid = a.grantee \
           AND a.grantee <> c.relowner AND r.rolname NOT IN ($1, $2)",
    )
    .bind(wall.app.as_str())
    .bind(wall.reader.as_str())
    .fetch_all(&mut *conn)
    .await
    .map_db(Entity::Tenant)
}

/// Moves every direct reader's grants on the wall to a membership of the reader role, so the
/// ACLs stop growing with the tenants.
async fn adopt_direct_readers(conn: &mut PgConnection, wall: WallContext<'_>) -> Result<()> {
    for name in direct_readers(conn, wall).await? {
        let role = quote_ident(&name);
        pg::ddl(
            conn,
            format!(
                "GRANT {reader} TO {role}; \
                 REVOKE USAGE ON SCHEMA wall FROM {role}; \
                 REVOKE SELECT (pid, token, tenant) ON wall.sessions FROM {role}; \
                 REVOKE SELECT ON SEQUENCE wall.session_token FROM {role}; \
                 REVOKE EXECUTE ON FUNCTION wall.tenant() FROM {role}",
                reader = wall.reader
            ),
        )
        .await?;
    }
    Ok(())
}

/// HMAC's padded key halves: (key XOR ipad, key XOR opad), 64 bytes each.
fn pads(secret: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    if secret.len() > 64 {
        return Err(Error::invalid("wall_key", "must be at most 64 bytes long"));
    }
    let mut inner = vec![0x36u8; 64];
    let mut outer = vec![0x5cu8; 64];
    for (i, b) in secret.iter().enumerate() {
        inner[i] ^= b;
        outer[i] ^= b;
    }
    Ok((inner, outer))
}

/// Adds `keys` to the connected database's key table (valid from now, no end) unless its id
/// is there. The same id with another key means another deployment's secret: `Conflict` on
/// `wall_key_id`. Returns whether it added the key.
pub(crate) async fn add_key(conn: &mut PgConnection, keys: &WallKeys) -> Result<bool> {
    let (inner, outer) = pads(keys.secret())?;
    let added: Option<i32> = sqlx::query_scalar(
        "INSERT INTO wall_private.keys (key_id, inner_pad, outer_pad) VALUES ($1, $2, $3) \
         ON CONFLICT (key_id) DO NOTHING RETURNING key_id",
    )
    .bind(keys.key_id())
    .bind(&inner)
    .bind(&outer)
    .fetch_optional(&mut *conn)
    .await
    .map_db(Entity::Tenant)?;
    if added.is_some() {
        return Ok(true);
    }
    let same: bool = sqlx::query_scalar(
        "SELECT inner_pad = $2 AND outer_pad = $3 FROM wall_private.keys WHERE key_id = $1",
    )
    .bind(keys.key_id())
    .bind(&inner)
    .bind(&outer)
    .fetch_one(&mut *conn)
    .await
    .map_db(Entity::Tenant)?;
    if same {
        Ok(false)
    } else {
        Err(Error::conflict(
            Entity::Tenant,
            "wall_key_id",
            format!(
                "wall key {} of this database is another key (another master secret?)",
                keys.key_id()
            ),
        ))
    }
}

/// What a role that owns walled tables (a schema tenant's role, the shared owner) needs of
/// the wall: forced row-level security binds owners too, so their statements evaluate the
/// policies' verdict check. The role becomes a member of the reader role (it inherits, as
/// tenant roles and the shared owner do); the wall's ACLs do not grow.
pub(crate) async fn grant_owner_role(
    conn: &mut PgConnection,
    wall: WallContext<'_>,
    role: &Ident,
) -> Result<()> {
    pg::ddl(conn, format!("GRANT {} TO {role}", wall.reader)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_are_hmac_key_halves() {
        let (inner, outer) = pads(&[0u8; 32]).unwrap_or_else(|e| panic!("{e}"));
        assert!(inner.iter().all(|b| *b == 0x36));
        assert!(outer.iter().all(|b| *b == 0x5c));
        assert!(pads(&[0u8; 65]).is_err());
    }
}
