//! The record of each move in the global database (`tm_tenant_moves`).

use sqlx::PgPool;
use tenant_manager_core::{
    Entity, Error, MoveId, MoveRecord, MoveState, MoveStep, Placement, Result, ServerId, TenantId,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::pg::SqlxResultExt;

const COLUMNS: &str = "id, tenant_id, from_server, from_database, from_schema, to_server, \
     to_database, to_schema, done, state, last_error, drop_after, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct MoveRow {
    id: Uuid,
    tenant_id: Uuid,
    from_server: String,
    from_database: String,
    from_schema: Option<String>,
    to_server: String,
    to_database: String,
    to_schema: Option<String>,
    done: Vec<String>,
    state: String,
    last_error: Option<String>,
    drop_after: Option<OffsetDateTime>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

fn corrupt(_: Error) -> Error {
    Error::internal("corrupt registry row: tenant move")
}

impl TryFrom<MoveRow> for MoveRecord {
    type Error = Error;
    fn try_from(row: MoveRow) -> Result<Self> {
        let placement = |server: String, database: String, schema: Option<String>| {
            Ok::<_, Error>(Placement {
                server: ServerId::new(server).map_err(corrupt)?,
                database,
                schema,
            })
        };
        let mut record = MoveRecord::new(
            TenantId::from_uuid(row.tenant_id),
            placement(row.from_server, row.from_database, row.from_schema)?,
            placement(row.to_server, row.to_database, row.to_schema)?,
            row.created_at,
        );
        record.id = MoveId::from_uuid(row.id);
        record.done = row
            .done
            .iter()
            .map(|s| s.parse::<MoveStep>().map_err(corrupt))
            .collect::<Result<_>>()?;
        record.state = row.state.parse::<MoveState>().map_err(corrupt)?;
        record.last_error = row.last_error;
        record.drop_after = row.drop_after;
        record.updated_at = row.updated_at;
        Ok(record)
    }
}

/// Inserts a new move; `Conflict` on `tenant` when the tenant has a running one.
pub(crate) async fn insert(pool: &PgPool, record: &MoveRecord) -> Result<MoveRecord> {
    let row: Option<MoveRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO tm_tenant_moves (id, tenant_id, from_server, from_database, from_schema, \
             to_server, to_database, to_schema, state, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'running', $9, $9) \
         ON CONFLICT (tenant_id) WHERE state = 'running' DO NOTHING \
         RETURNING {COLUMNS}"
    )))
    .bind(record.id.as_uuid())
    .bind(record.tenant_id.as_uuid())
    .bind(record.from.server.as_str())
    .bind(&record.from.database)
    .bind(&record.from.schema)
    .bind(record.to.server.as_str())
    .bind(&record.to.database)
    .bind(&record.to.schema)
    .bind(record.created_at)
    .fetch_optional(pool)
    .await
    .map_db(Entity::Tenant)?;
    match row {
        Some(row) => row.try_into(),
        None => Err(Error::conflict(
            Entity::Tenant,
            "tenant",
            "the tenant has a move that is still running (resume or cancel it)",
        )),
    }
}

/// The tenant's latest move.
pub(crate) async fn latest(pool: &PgPool, tenant: TenantId) -> Result<Option<MoveRecord>> {
    let row: Option<MoveRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM tm_tenant_moves WHERE tenant_id = $1 \
         ORDER BY created_at DESC, id DESC LIMIT 1"
    )))
    .bind(tenant.as_uuid())
    .fetch_optional(pool)
    .await
    .map_db(Entity::Tenant)?;
    row.map(MoveRecord::try_from).transpose()
}

/// Records `step` (once) and the state it leads to; `Conflict` on `state` for a cancelled move.
pub(crate) async fn record(
    pool: &PgPool,
    id: MoveId,
    step: MoveStep,
    drop_after: Option<OffsetDateTime>,
) -> Result<MoveRecord> {
    let row: Option<MoveRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE tm_tenant_moves SET \
             done = CASE WHEN $2 = ANY(done) THEN done ELSE array_append(done, $2) END, \
             state = CASE $2 WHEN 'old_dropped' THEN 'completed' \
                             WHEN 'resumed' THEN 'switched' ELSE state END, \
             drop_after = coalesce($3, drop_after), \
             failed_step = NULL, last_error = NULL, updated_at = now() \
         WHERE id = $1 AND state <> 'cancelled' RETURNING {COLUMNS}"
    )))
    .bind(id.as_uuid())
    .bind(step.as_str())
    .bind(drop_after)
    .fetch_optional(pool)
    .await
    .map_db(Entity::Tenant)?;
    match row {
        Some(row) => row.try_into(),
        None if by_id(pool, id).await?.is_some() => Err(cancelled()),
        None => Err(Error::not_found(Entity::Record, id)),
    }
}

/// The refusal of a step of a cancelled move.
pub(crate) fn cancelled() -> Error {
    Error::conflict(Entity::Tenant, "state", "the move was cancelled")
}

/// A move by id.
pub(crate) async fn by_id(pool: &PgPool, id: MoveId) -> Result<Option<MoveRecord>> {
    let row: Option<MoveRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM tm_tenant_moves WHERE id = $1"
    )))
    .bind(id.as_uuid())
    .fetch_optional(pool)
    .await
    .map_db(Entity::Tenant)?;
    row.map(MoveRecord::try_from).transpose()
}

/// The tenant's switched moves (old storage waiting for its drop), oldest first.
pub(crate) async fn pending(pool: &PgPool, tenant: TenantId) -> Result<Vec<MoveRecord>> {
    let rows: Vec<MoveRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM tm_tenant_moves WHERE tenant_id = $1 AND state = 'switched' \
         ORDER BY created_at, id"
    )))
    .bind(tenant.as_uuid())
    .fetch_all(pool)
    .await
    .map_db(Entity::Tenant)?;
    rows.into_iter().map(MoveRecord::try_from).collect()
}

/// Marks a running move whose switch is not recorded as cancelled; a cancelled one is returned
/// as it is. `Conflict` on `state` otherwise.
pub(crate) async fn cancel(pool: &PgPool, id: MoveId) -> Result<MoveRecord> {
    let row: Option<MoveRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE tm_tenant_moves SET state = 'cancelled', updated_at = now() \
         WHERE id = $1 AND state = 'running' AND NOT ('switched' = ANY(done)) \
         RETURNING {COLUMNS}"
    )))
    .bind(id.as_uuid())
    .fetch_optional(pool)
    .await
    .map_db(Entity::Tenant)?;
    if let Some(row) = row {
        return row.try_into();
    }
    match by_id(pool, id).await? {
        Some(record) if record.state == MoveState::Cancelled => Ok(record),
        Some(_) => Err(Error::conflict(
            Entity::Tenant,
            "state",
            "the move is switched already: the tenant is served from its destination",
        )),
        None => Err(Error::not_found(Entity::Record, id)),
    }
}

/// Records a step's failure.
pub(crate) async fn failure(pool: &PgPool, id: MoveId, step: MoveStep, error: &str) -> Result<()> {
    sqlx::query(
        "UPDATE tm_tenant_moves SET failed_step = $2, last_error = $3, updated_at = now() \
         WHERE id = $1",
    )
    .bind(id.as_uuid())
    .bind(step.as_str())
    .bind(error)
    .execute(pool)
    .await
    .map_db(Entity::Tenant)?;
    Ok(())
}
