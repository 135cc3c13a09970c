//! Schema isolation: a role owning its schema in a database shared by tenants, behind the
//! database's wall ([`crate::wall`]). The app login is not a member of the role: it holds the
//! schema's table privileges directly, and the wall's policies admit only the verified
//! tenant's rows. The role cannot log in (`NOLOGIN`) and has no `TEMPORARY` on the database
//! (`PUBLIC` has none either), so it can create objects only in its own schema.

use sqlx::Connection;
use tenant_manager_core::{Entity, Error, Result, Tenant};

use crate::ident::{Ident, quote_literal};
use crate::pg::{self, Login, Object, SqlxResultExt};
use crate::storage::{Target, TenantStorage};
use crate::wall;

fn names(target: &Target) -> Result<(&Ident, &Ident)> {
    match (&target.role, &target.schema) {
        (Some(role), Some(schema)) => Ok((role, schema)),
        _ => Err(Error::internal("schema isolation without a role or schema")),
    }
}

fn not_ours(schema: &Ident) -> Error {
    Error::conflict(
        Entity::Tenant,
        "placement.schema",
        format!("schema {} exists and is not this tenant's", schema.as_str()),
    )
}

/// Creates (or completes) the role and its schema and gives the app login the schema's
/// privileges, in one transaction, after installing the database's wall when missing (the app
/// login and the wall's owner are created first when missing).
pub(crate) async fn create(
    storage: &TenantStorage,
    tenant: &Tenant,
    target: &Target,
) -> Result<()> {
    let (role, schema) = names(target)?;
    let db = &target.database;
    let marker = pg::tenant_marker(tenant.id);
    let wall = storage.wall()?;
    let mut conn = storage.connect_shared(&target.server, db).await?;
    let created = async {
        if let Some(wall) = wall {
            wall::ensure_app_login_role(&mut conn, wall.app).await?;
            wall::ensure_roles(&mut conn, wall).await?;
        }
        let mut tx = conn.begin().await.map_db(Entity::Tenant)?;
        pg::lock_shared_database(&mut tx, db).await?;
        if let Some(wall) = wall {
            wall::install(&mut tx, wall).await?;
        }
        pg::ensure_role(&mut tx, role, &marker, Login::None).await?;
        if let Some(found) = pg::describe(&mut tx, Object::Schema, schema).await?
            && found.owner != role.as_str()
        {
            return Err(not_ours(schema));
        }
        pg::ddl(
            &mut tx,
            format!(
                "CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {role}; \
                 COMMENT ON SCHEMA {schema} IS {}; \
                 REVOKE ALL ON SCHEMA {schema} FROM PUBLIC; \
                 REVOKE TEMPORARY ON DATABASE {db} FROM PUBLIC, {role}; \
                 GRANT CONNECT ON DATABASE {db} TO {role}",
                quote_literal(&marker)
            ),
        )
        .await?;
        if let Some(wall) = wall {
            wall::grant_schema_direct(&mut tx, wall.app, role, schema, db).await?;
            wall::grant_owner_role(&mut tx, wall, role).await?;
        }
        tx.commit().await.map_db(Entity::Tenant)
    }
    .await;
    pg::close(conn).await;
    created
}

/// Takes the role from the app login (when the role is this tenant's), so the app login loses
/// it even if dropping the role fails later.
async fn revoke_from_app(
    conn: &mut sqlx::PgConnection,
    storage: &TenantStorage,
    role: &Ident,
    marker: &str,
) -> Result<()> {
    let Some(app) = &storage.settings.app_login else {
        return Ok(());
    };
    match pg::role_comment(conn, role).await? {
        Some(Some(existing)) if existing == marker => {
            wall::revoke_schema_tenant(conn, app, role).await
        }
        _ => Ok(()),
    }
}

/// Drops the schema with everything in it, the role's grants in the database, the app
/// login's membership, and the role.
pub(crate) async fn drop(storage: &TenantStorage, tenant: &Tenant, target: &Target) -> Result<()> {
    let (role, schema) = names(target)?;
    let marker = pg::tenant_marker(tenant.id);
    let Some(mut conn) = storage
        .connect_existing(&target.server, &target.database)
        .await?
    else {
        let mut conn = storage.connect_maintenance(&target.server).await?;
        let dropped = async {
            revoke_from_app(&mut conn, storage, role, &marker).await?;
            pg::drop_role(&mut conn, role, &marker).await
        }
        .await;
        pg::close(conn).await;
        return dropped;
    };
    let dropped = async {
        let mut tx = conn.begin().await.map_db(Entity::Tenant)?;
        pg::lock_shared_database(&mut tx, &target.database).await?;
        if let Some(found) = pg::describe(&mut tx, Object::Schema, schema).await? {
            if !found.belongs_to(role, &marker) {
                return Err(not_ours(schema));
            }
            pg::ddl(&mut tx, format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await?;
        }
        if pg::role_exists(&mut tx, role).await? {
            revoke_from_app(&mut tx, storage, role, &marker).await?;
            // Revokes the role's grants here (CONNECT on the database) so it can be dropped.
            pg::ddl(&mut tx, format!("DROP OWNED BY {role}")).await?;
        }
        pg::drop_role(&mut tx, role, &marker).await?;
        tx.commit().await.map_db(Entity::Tenant)
    }
    .await;
    pg::close(conn).await;
    dropped
}
