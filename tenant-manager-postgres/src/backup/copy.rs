//! Shared-isolation backups: a tenant's rows of every shared table, as binary `COPY` data.
//!
//! File layout (`tm_copy_v1`): the magic line `TMCOPY1\n`, then one binary `COPY` section per
//! table, then a JSON index (table, columns, offset, length of each section), then a footer of
//! two big-endian `u64`: the index's offset and length.
//!
//! Both directions run on a connection of a login that may only read, insert and delete rows
//! of these tables, in the tenant's verified context (the wall), so forced row-level security
//! applies. A restore therefore cannot switch triggers and foreign keys off
//! (`session_replication_role` needs a superuser): the host's triggers on the shared tables
//! fire for the rows written back, and statements are ordered by retrying those that violate
//! a foreign key (parents inserted before children, deleted after them; a cycle of foreign
//! keys between tables is refused).

use std::path::Path;

use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgConnection};
use tenant_manager_core::{Entity, Error, Result, TableRows, TenantId};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::credentials::WallKeys;
use crate::ident::{Ident, quote_ident, quote_literal};
use crate::pg::{FOREIGN_KEY_VIOLATION, SqlxResultExt, has_state};

/// Format name of these artifacts in the catalogue.
pub(crate) const FORMAT: &str = "tm_copy_v1";
const MAGIC: &[u8] = b"TMCOPY1\n";
/// Largest index accepted when reading (a corrupt footer must not allocate gigabytes).
const MAX_INDEX_LEN: u64 = 16 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;

#[derive(Debug, Serialize, Deserialize)]
struct Index {
    tenant_id: TenantId,
    schema: String,
    tables: Vec<Section>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Section {
    table: String,
    columns: Vec<String>,
    offset: u64,
    len: u64,
}

fn io_error(err: std::io::Error) -> Error {
    Error::unavailable("backup work directory", err)
}

/// Tables of `schema` with a `tenant_id` column, and their copyable columns in order.
async fn tables(conn: &mut PgConnection, schema: &str) -> Result<Vec<(String, Vec<String>)>> {
    let rows: Vec<(String, Vec<String>)> = sqlx::query_as(
        "SELECT c.relname::text, \
                array_agg(a2.attname::text ORDER BY a2.attnum) \
         FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped \
         JOIN pg_attribute a2 ON a2.attrelid = c.oid AND a2.attnum > 0 AND NOT a2.attisdropped \
                              AND a2.attgenerated = '' \
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') \
         GROUP BY c.relname ORDER BY c.relname",
    )
    .bind(schema)
    .fetch_all(conn)
    .await
    .map_db(Entity::Backup)?;
    Ok(rows)
}

/// The quoted, qualified names of the tables [`tables`] finds, for grants.
pub(crate) async fn table_names(conn: &mut PgConnection, schema: &Ident) -> Result<Vec<String>> {
    Ok(tables(conn, schema.as_str())
        .await?
        .into_iter()
        .map(|(table, _)| format!("{schema}.{}", quote_ident(&table)))
        .collect())
}

/// Scopes the session to `tenant`: behind the wall (`keys`) it enters the tenant's verified
/// context, before any transaction (a read-only one could not record the verdict); without it,
/// `app.tenant_id` for the transaction, which legacy policies read.
async fn scope(conn: &mut PgConnection, tenant: TenantId, keys: Option<&WallKeys>) -> Result<()> {
    match keys {
        Some(keys) => crate::wall::enter(conn, keys, tenant).await,
        None => {
            sqlx::query("SELECT pg_catalog.set_config('app.tenant_id', $1, false)")
                .bind(tenant.to_string())
                .execute(conn)
                .await
                .map_db(Entity::Backup)?;
            Ok(())
        }
    }
}

/// Runs each of `statements` (in a savepoint) until all succeeded, putting off those that
/// violate a foreign key until a later pass: parents are inserted before their children and
/// deleted after them, without `session_replication_role` (which needs a superuser). Fails
/// with the last violation when a pass makes no progress (a cycle between tables).
async fn in_key_order(conn: &mut PgConnection, statements: Vec<String>) -> Result<()> {
    let mut pending = statements;
    while !pending.is_empty() {
        let before = pending.len();
        let mut later = Vec::new();
        let mut last = None;
        for sql in pending.drain(..) {
            let mut sp = conn.begin().await.map_db(Entity::Backup)?;
            match sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
                .execute(&mut *sp)
                .await
            {
                Ok(_) => sp.commit().await.map_db(Entity::Backup)?,
                Err(e) if has_state(&e, &[FOREIGN_KEY_VIOLATION]) => {
                    sp.rollback().await.map_db(Entity::Backup)?;
                    later.push(sql);
                    last = Some(e);
                }
                Err(e) => return Err(crate::pg::map_sqlx(Entity::Backup, e)),
            }
        }
        if let Some(e) = last.filter(|_| later.len() == before) {
            return Err(crate::pg::map_sqlx(Entity::Backup, e));
        }
        pending = later;
    }
    Ok(())
}

fn column_list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes the tenant's rows of every shared table to `path`, from one consistent snapshot,
/// and returns how many rows of each table it wrote (counted in that snapshot).
pub(crate) async fn dump(
    conn: &mut PgConnection,
    schema: &Ident,
    tenant: TenantId,
    keys: Option<&WallKeys>,
    path: &Path,
) -> Result<TableRows> {
    scope(conn, tenant, keys).await?;
    let mut tx = conn.begin().await.map_db(Entity::Backup)?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await
        .map_db(Entity::Backup)?;
    let tables = tables(&mut tx, schema.as_str()).await?;
    // The work file exists already, private (`0600`): it is truncated, not recreated.
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .await
        .map_err(io_error)?;
    file.write_all(MAGIC).await.map_err(io_error)?;
    let mut offset = MAGIC.len() as u64;
    let mut index = Index {
        tenant_id: tenant,
        schema: schema.as_str().to_owned(),
        tables: Vec::with_capacity(tables.len()),
    };
    let mut rows = TableRows::new();
    for (table, columns) in tables {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {schema}.{} WHERE tenant_id = {}::uuid",
            quote_ident(&table),
            quote_literal(&tenant.to_string())
        )))
        .fetch_one(&mut *tx)
        .await
        .map_db(Entity::Backup)?;
        rows.insert(
            format!("{}.{table}", schema.as_str()),
            u64::try_from(n).unwrap_or(0),
        );
        // A UUID is hex and dashes; COPY takes no bind parameters.
        let sql = format!(
            "COPY (SELECT {} FROM {schema}.{} WHERE tenant_id = {}::uuid) TO STDOUT (FORMAT binary)",
            column_list(&columns),
            quote_ident(&table),
            quote_literal(&tenant.to_string())
        );
        let mut stream = tx.copy_out_raw(&sql).await.map_db(Entity::Backup)?;
        let mut len = 0u64;
        while let Some(chunk) = stream.try_next().await.map_db(Entity::Backup)? {
            file.write_all(&chunk).await.map_err(io_error)?;
            len += chunk.len() as u64;
        }
        drop(stream);
        index.tables.push(Section {
            table,
            columns,
            offset,
            len,
        });
        offset += len;
    }
    let json = serde_json::to_vec(&index)
        .map_err(|e| Error::internal_with("backup index not serialisable", e))?;
    file.write_all(&json).await.map_err(io_error)?;
    file.write_all(&offset.to_be_bytes())
        .await
        .map_err(io_error)?;
    file.write_all(&(json.len() as u64).to_be_bytes())
        .await
        .map_err(io_error)?;
    file.sync_all().await.map_err(io_error)?;
    tx.commit().await.map_db(Entity::Backup)?;
    Ok(rows)
}

/// The rows of each table section of the artifact at `path`, read from its binary `COPY`
/// data (what a restore would write back).
pub(crate) async fn artifact_rows(path: &Path) -> Result<TableRows> {
    let mut file = tokio::fs::File::open(path).await.map_err(io_error)?;
    let index = read_index(&mut file).await?;
    let mut rows = TableRows::new();
    for section in &index.tables {
        file.seek(std::io::SeekFrom::Start(section.offset))
            .await
            .map_err(io_error)?;
        let len = usize::try_from(section.len)
            .map_err(|_| Error::invalid("backup", "has a damaged index"))?;
        let mut data = vec![0u8; len];
        file.read_exact(&mut data).await.map_err(io_error)?;
        rows.insert(
            format!("{}.{}", index.schema, section.table),
            count_tuples(&data)?,
        );
    }
    Ok(rows)
}

/// Tuples in one binary `COPY` stream: signature, flags, header extension, then tuples (a
/// field count, each field a length and its bytes) up to the `-1` trailer.
fn count_tuples(data: &[u8]) -> Result<u64> {
    const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";
    let corrupt = || Error::invalid("backup", "has a damaged COPY section");
    let take = |pos: usize, n: usize| data.get(pos..pos + n).ok_or_else(corrupt);
    if take(0, SIGNATURE.len())? != SIGNATURE {
        return Err(corrupt());
    }
    let ext = take(15, 4)?;
    let ext = u32::from_be_bytes([ext[0], ext[1], ext[2], ext[3]]) as usize;
    let mut pos = 19 + ext;
    let mut tuples = 0u64;
    loop {
        let f = take(pos, 2)?;
        pos += 2;
        let fields = i16::from_be_bytes([f[0], f[1]]);
        if fields == -1 {
            return Ok(tuples);
        }
        for _ in 0..fields.max(0) {
            let l = take(pos, 4)?;
            pos += 4;
            let len = i32::from_be_bytes([l[0], l[1], l[2], l[3]]);
            pos += usize::try_from(len.max(0)).map_err(|_| corrupt())?;
        }
        tuples += 1;
    }
}

async fn read_index(file: &mut tokio::fs::File) -> Result<Index> {
    let corrupt = |what: &'static str| Error::invalid("backup", what);
    let size = file.metadata().await.map_err(io_error)?.len();
    let mut magic = [0u8; MAGIC.len()];
    file.read_exact(&mut magic).await.map_err(io_error)?;
    if magic != MAGIC || size < (MAGIC.len() + 16) as u64 {
        return Err(corrupt("is not a tm_copy_v1 artifact"));
    }
    file.seek(std::io::SeekFrom::Start(size - 16))
        .await
        .map_err(io_error)?;
    let offset = file.read_u64().await.map_err(io_error)?;
    let len = file.read_u64().await.map_err(io_error)?;
    if len > MAX_INDEX_LEN || offset.checked_add(len) != Some(size - 16) {
        return Err(corrupt("has a damaged index"));
    }
    file.seek(std::io::SeekFrom::Start(offset))
        .await
        .map_err(io_error)?;
    let mut json = vec![0u8; usize::try_from(len).map_err(|_| corrupt("has a damaged index"))?];
    file.read_exact(&mut json).await.map_err(io_error)?;
    serde_json::from_slice(&json).map_err(|_| corrupt("has a damaged index"))
}

/// Replaces `tenant`'s rows in the shared tables of `schema` with the artifact's, rewriting
/// their `tenant_id` (a clone may come from another tenant). One transaction, scoped to
/// `tenant` so row-level security applies; run by a login that may only read and write those
/// tables.
pub(crate) async fn restore(
    conn: &mut PgConnection,
    schema: &Ident,
    tenant: TenantId,
    keys: Option<&WallKeys>,
    path: &Path,
) -> Result<()> {
    let mut file = tokio::fs::File::open(path).await.map_err(io_error)?;
    let index = read_index(&mut file).await?;
    scope(conn, tenant, keys).await?;
    let mut tx = conn.begin().await.map_db(Entity::Backup)?;
    let present = tables(&mut tx, schema.as_str()).await?;
    let mut inserts = Vec::with_capacity(index.tables.len());
    for (i, section) in index.tables.iter().enumerate() {
        if !present.iter().any(|(t, _)| *t == section.table) {
            return Err(Error::invalid(
                "backup",
                format!(
                    "table {} has no tenant_id table to restore into",
                    section.table
                ),
            ));
        }
        let qualified = format!("{schema}.{}", quote_ident(&section.table));
        let columns = column_list(&section.columns);
        let staging = format!("tm_restore_{i}");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE TEMP TABLE {staging} (LIKE {qualified}) ON COMMIT DROP"
        )))
        .execute(&mut *tx)
        .await
        .map_db(Entity::Backup)?;
        let mut copy = tx
            .copy_in_raw(&format!(
                "COPY {staging} ({columns}) FROM STDIN (FORMAT binary)"
            ))
            .await
            .map_db(Entity::Backup)?;
        file.seek(std::io::SeekFrom::Start(section.offset))
            .await
            .map_err(io_error)?;
        let mut left = section.len;
        let mut buf = vec![0u8; CHUNK];
        while left > 0 {
            let want = usize::try_from(left.min(CHUNK as u64)).unwrap_or(CHUNK);
            let got = file.read(&mut buf[..want]).await.map_err(io_error)?;
            if got == 0 {
                return Err(Error::invalid("backup", "is truncated"));
            }
            copy.send(&buf[..got]).await.map_db(Entity::Backup)?;
            left -= got as u64;
        }
        copy.finish().await.map_db(Entity::Backup)?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {staging} SET tenant_id = $1"
        )))
        .bind(tenant.as_uuid())
        .execute(&mut *tx)
        .await
        .map_db(Entity::Backup)?;
        inserts.push(format!(
            "INSERT INTO {qualified} ({columns}) SELECT {columns} FROM {staging}"
        ));
    }
    // Row-level security limits both to the tenant's rows; the condition says so too.
    let deletes = present
        .iter()
        .map(|(table, _)| {
            format!(
                "DELETE FROM {schema}.{} WHERE tenant_id = {}::uuid",
                quote_ident(table),
                quote_literal(&tenant.to_string())
            )
        })
        .collect();
    in_key_order(&mut tx, deletes).await?;
    in_key_order(&mut tx, inserts).await?;
    tx.commit().await.map_db(Entity::Backup)
}
