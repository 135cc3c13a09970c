//! Shared isolation: rows tagged with `tenant_id` in shared tables under forced row-level
//! security. The tables belong to one non-superuser owner role; a tenant adds no objects.

use sqlx::Connection;
use tenant_manager_core::{Entity, Result, Tenant};

use crate::ident::quote_ident;
use crate::pg::{self, Login, SqlxResultExt};
use crate::storage::{Target, TenantStorage};
use crate::wall;

/// Marker of the role owning the shared tables.
pub(crate) const SHARED_OWNER_MARKER: &str = "tenant-manager:shared-owner";

/// Ensures the shared database, its wall, its owner role and schema exist, and the app login's
/// access to the shared tables (the app login and the wall's owner are created first when
/// missing). The shared migrations put the tables behind the wall.
pub(crate) async fn create(storage: &TenantStorage, target: &Target) -> Result<()> {
    let owner = &storage.settings.shared_owner;
    let schema = &storage.settings.shared_schema;
    let wall = storage.wall()?;
    let mut conn = storage
        .connect_shared(&target.server, &target.database)
        .await?;
    let created = async {
        if let Some(wall) = wall {
            wall::ensure_app_login_role(&mut conn, wall.app).await?;
            wall::ensure_roles(&mut conn, wall).await?;
        }
        let mut tx = conn.begin().await.map_db(Entity::Tenant)?;
        pg::lock_shared_database(&mut tx, &target.database).await?;
        if let Some(wall) = wall {
            wall::install(&mut tx, wall).await?;
        }
        pg::ensure_role(&mut tx, owner, SHARED_OWNER_MARKER, Login::None).await?;
        pg::ddl(
            &mut tx,
            format!(
                "CREATE SCHEMA IF NOT EXISTS {schema}; \
                 GRANT USAGE, CREATE ON SCHEMA {schema} TO {owner}"
            ),
        )
        .await?;
        if let Some(wall) = wall {
            wall::grant_shared(&mut tx, storage, &target.database, wall.app).await?;
            wall::grant_owner_role(&mut tx, wall, owner).await?;
        }
        tx.commit().await.map_db(Entity::Tenant)
    }
    .await;
    pg::close(conn).await;
    created
}

/// After the shared migrations: the app login's grants on the tables they created (default
/// privileges already cover them) and none on the migration history.
pub(crate) async fn secure_migrated(storage: &TenantStorage, target: &Target) -> Result<()> {
    match &storage.settings.app_login {
        Some(app) => wall::grant_shared_database(storage, &target.server, &target.database, app)
            .await
            .map(|_| ()),
        None => Ok(()),
    }
}

/// Deletes the tenant's rows from every shared table that has a `tenant_id` column, in one
/// transaction. Foreign keys between a tenant's own rows are not checked while doing so
/// (`session_replication_role = replica`): all of them go.
pub(crate) async fn drop(storage: &TenantStorage, tenant: &Tenant, target: &Target) -> Result<()> {
    let Some(mut conn) = storage
        .connect_existing(&target.server, &target.database)
        .await?
    else {
        return Ok(());
    };
    let dropped = async {
        let tables = tenant_tables(&mut conn, storage.settings.shared_schema.as_str()).await?;
        let mut tx = conn.begin().await.map_db(Entity::Tenant)?;
        sqlx::query("SET LOCAL session_replication_role = replica")
            .execute(&mut *tx)
            .await
            .map_db(Entity::Tenant)?;
        for table in &tables {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE tenant_id = $1"
            )))
            .bind(tenant.id.as_uuid())
            .execute(&mut *tx)
            .await
            .map_db(Entity::Tenant)?;
        }
        tx.commit().await.map_db(Entity::Tenant)
    }
    .await;
    pg::close(conn).await;
    dropped
}

/// The quoted, schema-qualified names of tables in `schema` that have a `tenant_id` column.
pub(crate) async fn tenant_tables(
    conn: &mut sqlx::PgConnection,
    schema: &str,
) -> Result<Vec<String>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT n.nspname::text, c.relname::text FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped \
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY c.relname",
    )
    .bind(schema)
    .fetch_all(conn)
    .await
    .map_db(Entity::Tenant)?;
    Ok(rows
        .into_iter()
        .map(|(s, t)| format!("{}.{}", quote_ident(&s), quote_ident(&t)))
        .collect())
}
