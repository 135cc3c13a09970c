//! [`PgStorageMeter`]: the bytes a tenant's data takes, per isolation.

use std::fmt;

use async_trait::async_trait;
use sqlx::PgConnection;
use tenant_manager_core::{Entity, Isolation, Result, StorageMeter, Tenant, TenantStatus};

use crate::ident::{Ident, quote_ident};
use crate::pg::{self, SqlxResultExt};
use crate::storage::{Target, TenantStorage};

/// Measures tenants' storage with the servers' admin connections (one per measurement).
///
/// | isolation | measure | cost |
/// |---|---|---|
/// | database | `pg_database_size` of its database | one catalog call |
/// | schema | sum of `pg_total_relation_size` (heap, indexes, TOAST) of the tables, materialized views and sequences of its schema | one pass over the schema's `pg_class` rows |
/// | shared | sum of `pg_column_size(row)` over its rows of every table of the shared schema with a `tenant_id` column | reads only its own rows (by the `tenant_id` key) |
///
/// Shared tenants are measured by their rows, not as "row share × table size": that
/// proportion needs a count of every tenant's rows, a cost that grows with the neighbours'
/// data, and charges a tenant for the others' bloat and indexes. The row sum reads the tenant's
/// own rows only and counts what the tenant stored (compressed as stored, without page and
/// index overhead). The admin connection must read every row (a superuser, or a role with
/// `BYPASSRLS`): the shared tables force row-level security.
#[derive(Clone)]
pub struct PgStorageMeter {
    storage: TenantStorage,
}

impl fmt::Debug for PgStorageMeter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStorageMeter")
            .field("storage", &self.storage)
            .finish()
    }
}

impl PgStorageMeter {
    /// A meter of the tenants of `storage`.
    pub fn new(storage: TenantStorage) -> Self {
        Self { storage }
    }
}

#[async_trait]
impl StorageMeter for PgStorageMeter {
    async fn measure(&self, tenant: &Tenant) -> Result<u64> {
        if matches!(
            tenant.status,
            TenantStatus::Pending | TenantStatus::Provisioning
        ) {
            return Err(tenant_manager_core::Error::NotReady {
                tenant: tenant.id,
                status: tenant.status,
            });
        }
        let target = self.storage.target(tenant)?;
        let mut conn = match target.isolation {
            Isolation::Database => self.storage.connect_maintenance(&target.server).await?,
            Isolation::Schema | Isolation::Shared => {
                self.storage
                    .connect(&target.server, &target.database)
                    .await?
            }
        };
        let measured = measure(&mut conn, tenant, &target).await;
        pg::close(conn).await;
        measured.map(|bytes| u64::try_from(bytes).unwrap_or(0))
    }
}

async fn measure(conn: &mut PgConnection, tenant: &Tenant, target: &Target) -> Result<i64> {
    match (target.isolation, &target.schema) {
        (Isolation::Database, _) => database_size(conn, &target.database).await,
        (Isolation::Schema, Some(schema)) => schema_size(conn, schema).await,
        (Isolation::Shared, Some(schema)) => shared_rows_size(conn, schema, tenant).await,
        _ => Err(tenant_manager_core::Error::internal(
            "tenant target without a schema",
        )),
    }
}

async fn database_size(conn: &mut PgConnection, database: &Ident) -> Result<i64> {
    let size: Option<i64> =
        sqlx::query_scalar("SELECT pg_database_size(oid) FROM pg_database WHERE datname = $1")
            .bind(database.as_str())
            .fetch_optional(conn)
            .await
            .map_db(Entity::Tenant)?;
    Ok(size.unwrap_or(0))
}

async fn schema_size(conn: &mut PgConnection, schema: &Ident) -> Result<i64> {
    sqlx::query_scalar(
        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'm', 'S')",
    )
    .bind(schema.as_str())
    .fetch_one(conn)
    .await
    .map_db(Entity::Tenant)
}

async fn shared_rows_size(conn: &mut PgConnection, schema: &Ident, tenant: &Tenant) -> Result<i64> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_attribute a ON a.attrelid = c.oid \
         WHERE n.nspname = $1 AND c.relkind = 'r' AND a.attname = 'tenant_id' \
           AND NOT a.attisdropped AND a.atttypid = 'uuid'::regtype \
         ORDER BY c.relname",
    )
    .bind(schema.as_str())
    .fetch_all(&mut *conn)
    .await
    .map_db(Entity::Tenant)?;
    let mut total: i64 = 0;
    for table in tables {
        // Catalog names are quoted, never trusted as SQL.
        let sql = format!(
            "SELECT coalesce(sum(pg_column_size(t.*)), 0)::bigint FROM {}.{} t \
             WHERE t.tenant_id = $1",
            schema.quoted(),
            quote_ident(&table),
        );
        let bytes: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(*tenant.id.as_uuid())
            .fetch_one(&mut *conn)
            .await
            .map_db(Entity::Tenant)?;
        total = total.saturating_add(bytes);
    }
    Ok(total)
}
