//! The backup catalogue in the global database (`tm_backups`).

use sqlx::{FromRow, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use tenant_manager_core::{
    BackupId, BackupRecord, Entity, Error, Isolation, Result, StoredObject, TableRows, TenantId,
};

use crate::pg::SqlxResultExt;

/// A catalogue row: the record plus where the data came from.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The public record.
    pub(crate) record: BackupRecord,
    /// Isolation of the source tenant.
    pub(crate) isolation: Isolation,
    /// Source database (database isolation) or schema (schema isolation) name.
    pub(crate) source_name: String,
}

#[derive(FromRow)]
struct Row {
    id: Uuid,
    tenant_id: Uuid,
    isolation: String,
    source_name: String,
    key: String,
    size_bytes: i64,
    sha256: String,
    format: String,
    created_at: OffsetDateTime,
    table_rows: Option<sqlx::types::Json<TableRows>>,
}

const COLUMNS: &str = "id, tenant_id, isolation, source_name, key, size_bytes, sha256, format, \
     created_at, table_rows";

impl TryFrom<Row> for Entry {
    type Error = Error;

    fn try_from(row: Row) -> Result<Self> {
        let object = StoredObject::new(
            row.key,
            u64::try_from(row.size_bytes).unwrap_or(0),
            row.sha256,
        );
        let isolation: Isolation = row
            .isolation
            .parse()
            .map_err(|e| Error::internal_with("corrupt backup row: isolation", e))?;
        let mut record = BackupRecord::new(
            BackupId::from_uuid(row.id),
            TenantId::from_uuid(row.tenant_id),
            object,
            row.format,
            row.created_at,
        )
        .with_isolation(isolation);
        if let Some(rows) = row.table_rows {
            record = record.with_table_rows(rows.0);
        }
        Ok(Entry {
            record,
            isolation,
            source_name: row.source_name,
        })
    }
}

/// Records a stored backup.
pub(crate) async fn insert(pool: &PgPool, entry: &Entry, slug: &str) -> Result<()> {
    let r = &entry.record;
    sqlx::query(
        "INSERT INTO tm_backups (id, tenant_id, tenant_slug, isolation, source_name, key, \
             size_bytes, sha256, format, created_at, table_rows) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(r.id.as_uuid())
    .bind(r.tenant_id.as_uuid())
    .bind(slug)
    .bind(entry.isolation.as_str())
    .bind(&entry.source_name)
    .bind(&r.key)
    .bind(i64::try_from(r.size_bytes).unwrap_or(i64::MAX))
    .bind(&r.sha256)
    .bind(&r.format)
    .bind(r.created_at)
    .bind(r.table_rows.as_ref().map(sqlx::types::Json))
    .execute(pool)
    .await
    .map_db(Entity::Backup)?;
    Ok(())
}

/// One backup.
pub(crate) async fn get(pool: &PgPool, id: BackupId) -> Result<Entry> {
    let sql = format!("SELECT {COLUMNS} FROM tm_backups WHERE id = $1");
    sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(sql))
        .bind(id.as_uuid())
        .fetch_optional(pool)
        .await
        .map_db(Entity::Backup)?
        .ok_or_else(|| Error::not_found(Entity::Backup, id))?
        .try_into()
}

/// A tenant's backups, newest first.
pub(crate) async fn of_tenant(pool: &PgPool, tenant: TenantId) -> Result<Vec<BackupRecord>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM tm_backups WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC"
    );
    let rows = sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(sql))
        .bind(tenant.as_uuid())
        .fetch_all(pool)
        .await;
    records(rows)
}

/// Backups (of one tenant, or all) taken before `cutoff`, oldest first.
pub(crate) async fn older_than(
    pool: &PgPool,
    tenant: Option<TenantId>,
    cutoff: OffsetDateTime,
) -> Result<Vec<BackupRecord>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM tm_backups \
         WHERE created_at < $1 AND ($2::uuid IS NULL OR tenant_id = $2) ORDER BY created_at"
    );
    let rows = sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(sql))
        .bind(cutoff)
        .bind(tenant.map(Uuid::from))
        .fetch_all(pool)
        .await;
    records(rows)
}

/// The records of fetched catalogue rows.
fn records(rows: std::result::Result<Vec<Row>, sqlx::Error>) -> Result<Vec<BackupRecord>> {
    rows.map_db(Entity::Backup)?
        .into_iter()
        .map(|row| Entry::try_from(row).map(|e| e.record))
        .collect()
}

/// Deletes a catalogue row.
pub(crate) async fn delete(pool: &PgPool, id: BackupId) -> Result<()> {
    sqlx::query("DELETE FROM tm_backups WHERE id = $1")
        .bind(id.as_uuid())
        .execute(pool)
        .await
        .map_db(Entity::Backup)?;
    Ok(())
}
