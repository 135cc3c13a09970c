//! What a tenant holds, table by table: row counts and an MD5 over the rows, read through the
//! tenant's own scope (its role, its schema, its row-level context), so both ends of a move are
//! read exactly as the tenant sees them.

use std::collections::BTreeMap;

use sqlx::{Connection, PgConnection};
use tenant_manager_core::{Entity, Isolation, Result, Tenant};

use crate::ident::quote_ident;
use crate::migrate::tenant::scope_of;
use crate::pg::{self, SqlxResultExt};
use crate::storage::{Target, TenantStorage};

/// Rows and their MD5 per table (`schema.table`).
pub(crate) type Sums = BTreeMap<String, (u64, String)>;

/// A table of the tenant: its name, its quoted name, its primary key's columns.
struct Table {
    name: String,
    quoted: String,
    key: Vec<String>,
}

/// The tenant's tables at `target`, with their primary keys.
async fn tables(
    conn: &mut PgConnection,
    storage: &TenantStorage,
    target: &Target,
) -> Result<Vec<Table>> {
    let (filter, schema): (&str, Option<&str>) = match target.isolation {
        Isolation::Database => (
            "n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg\\_%'",
            None,
        ),
        Isolation::Schema => ("n.nspname = $1", target.schema.as_ref().map(|s| s.as_str())),
        Isolation::Shared => (
            "n.nspname = $1 AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid \
               AND a.attname = 'tenant_id' AND NOT a.attisdropped)",
            Some(storage.settings.shared_schema.as_str()),
        ),
    };
    let rows: Vec<(String, String, Vec<String>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT n.nspname::text, c.relname::text, \
             coalesce((SELECT array_agg(a.attname::text ORDER BY array_position(i.indkey::int2[], a.attnum)) \
                FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid \
                  AND a.attnum = ANY(i.indkey::int2[]) \
                WHERE i.indrelid = c.oid AND i.indisprimary), '{{}}') \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND {filter} \
         ORDER BY 1, 2"
    )))
    .bind(schema)
    .fetch_all(&mut *conn)
    .await
    .map_db(Entity::Tenant)?;
    Ok(rows
        .into_iter()
        .map(|(schema, table, key)| Table {
            name: format!("{schema}.{table}"),
            quoted: format!("{}.{}", quote_ident(&schema), quote_ident(&table)),
            key,
        })
        .collect())
}

/// Counts and checksums of every table of `tenant` at its placement.
pub(crate) async fn sums(storage: &TenantStorage, tenant: &Tenant) -> Result<Sums> {
    let target = storage.target(tenant)?;
    let mut conn = storage.connect(&target.server, &target.database).await?;
    let summed = async {
        let tables = tables(&mut conn, storage, &target).await?;
        let mut tx = conn.begin().await.map_db(Entity::Tenant)?;
        // Row text must not depend on the servers' settings.
        sqlx::raw_sql(
            "SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'; \
             SET LOCAL IntervalStyle = 'postgres'; SET LOCAL extra_float_digits = 3; \
             SET LOCAL bytea_output = 'hex'",
        )
        .execute(&mut *tx)
        .await
        .map_db(Entity::Tenant)?;
        scope_of(storage, &target, tenant)?
            .enter(&mut tx, true)
            .await?;
        let mut sums = Sums::new();
        for table in tables {
            // Ordered by the primary key (as text in byte order, the same on every server),
            // else by the whole row.
            let order = if table.key.is_empty() {
                "t::text COLLATE \"C\"".to_owned()
            } else {
                table
                    .key
                    .iter()
                    .map(|c| format!("(t.{})::text COLLATE \"C\"", quote_ident(c)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let only_tenant = if target.isolation == Isolation::Shared {
                "WHERE t.tenant_id = $1"
            } else {
                "WHERE $1::uuid IS NOT NULL"
            };
            let (rows, md5): (i64, String) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT count(*), coalesce(md5(string_agg(t::text, E'\\n' ORDER BY {order})), '') \
                 FROM {} t {only_tenant}",
                table.quoted
            )))
            .bind(tenant.id.as_uuid())
            .fetch_one(&mut *tx)
            .await
            .map_db(Entity::Tenant)?;
            sums.insert(table.name, (u64::try_from(rows).unwrap_or(0), md5));
        }
        let _ = tx.rollback().await;
        Ok(sums)
    }
    .await;
    pg::close(conn).await;
    summed
}
