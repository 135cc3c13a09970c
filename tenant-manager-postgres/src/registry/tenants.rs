//! Tenant statements of the registry. Every value is a bind parameter.

use std::collections::BTreeMap;

use sqlx::{AssertSqlSafe, PgConnection};
use time::OffsetDateTime;
use uuid::Uuid;

use tenant_manager_core::{
    Entity, Error, Page, Result, ServerId, Tenant, TenantId, TenantQuery, TenantStatus,
    TenantUpdate,
};

use super::rows::{TENANT_COLUMNS, TenantRow, quota_json};
use crate::pg::SqlxResultExt;

/// Inserts a tenant record as it is and returns it as stored.
pub(crate) async fn insert(conn: &mut PgConnection, tenant: &Tenant) -> Result<Tenant> {
    let sql = format!(
        "INSERT INTO tm_tenants ({TENANT_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
         RETURNING {TENANT_COLUMNS}"
    );
    sqlx::query_as::<_, TenantRow>(AssertSqlSafe(sql))
        .bind(tenant.id.as_uuid())
        .bind(tenant.slug.as_str())
        .bind(&tenant.name)
        .bind(tenant.status.as_str())
        .bind(&tenant.status_reason)
        .bind(tenant.plan.as_str())
        .bind(quota_json(tenant.quota.as_ref())?)
        .bind(tenant.isolation.as_str())
        .bind(tenant.placement.server.as_str())
        .bind(&tenant.placement.database)
        .bind(&tenant.placement.schema)
        .bind(&tenant.region)
        .bind(tenant.domain.as_ref().map(|d| d.to_ascii_lowercase()))
        .bind(tenant.created_at)
        .bind(tenant.updated_at)
        .fetch_one(conn)
        .await
        .map_db(Entity::Tenant)?
        .try_into()
}

/// The tenant with this id, if any; `lock` takes a row lock for the rest of the transaction.
pub(crate) async fn by_id(
    conn: &mut PgConnection,
    id: TenantId,
    lock: bool,
) -> Result<Option<Tenant>> {
    let suffix = if lock { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT {TENANT_COLUMNS} FROM tm_tenants WHERE id = $1{suffix}");
    sqlx::query_as::<_, TenantRow>(AssertSqlSafe(sql))
        .bind(id.as_uuid())
        .fetch_optional(conn)
        .await
        .map_db(Entity::Tenant)?
        .map(Tenant::try_from)
        .transpose()
}

/// The tenant whose `column` (`slug` or `lower(domain)`) equals `value`.
pub(crate) async fn by_key(
    conn: &mut PgConnection,
    key: Key,
    value: &str,
) -> Result<Option<Tenant>> {
    let predicate = match key {
        Key::Slug => "slug = $1",
        Key::Domain => "lower(domain) = lower($1)",
    };
    let sql = format!("SELECT {TENANT_COLUMNS} FROM tm_tenants WHERE {predicate}");
    sqlx::query_as::<_, TenantRow>(AssertSqlSafe(sql))
        .bind(value)
        .fetch_optional(conn)
        .await
        .map_db(Entity::Tenant)?
        .map(Tenant::try_from)
        .transpose()
}

/// Unique lookup keys besides the id.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Key {
    /// `slug`.
    Slug,
    /// `lower(domain)`.
    Domain,
}

/// One page of tenants, ordered by id.
pub(crate) async fn list(conn: &mut PgConnection, query: &TenantQuery) -> Result<Page<Tenant>> {
    query.validate()?;
    let sql = format!(
        "SELECT {TENANT_COLUMNS} FROM tm_tenants \
         WHERE ($1::text IS NULL OR status = $1) \
           AND ($2::text IS NULL OR plan = $2) \
           AND ($3::text IS NULL OR isolation = $3) \
           AND ($4::uuid IS NULL OR id > $4) \
         ORDER BY id LIMIT $5"
    );
    let rows = sqlx::query_as::<_, TenantRow>(AssertSqlSafe(sql))
        .bind(query.status.map(TenantStatus::as_str))
        .bind(query.plan.as_ref().map(|p| p.as_str()))
        .bind(query.isolation.map(|i| i.as_str()))
        .bind(query.after.map(Uuid::from))
        .bind(i64::from(query.limit) + 1)
        .fetch_all(conn)
        .await
        .map_db(Entity::Tenant)?;
    let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
    let more = rows.len() > limit;
    let items = rows
        .into_iter()
        .take(limit)
        .map(Tenant::try_from)
        .collect::<Result<Vec<_>>>()?;
    let next = if more {
        items.last().map(|t| t.id)
    } else {
        None
    };
    Ok(Page { items, next })
}

/// How many tenants are in `status`, or not deleted when `None`.
pub(crate) async fn count(conn: &mut PgConnection, status: Option<TenantStatus>) -> Result<u64> {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tm_tenants \
         WHERE CASE WHEN $1::text IS NULL THEN status <> 'deleted' ELSE status = $1 END",
    )
    .bind(status.map(TenantStatus::as_str))
    .fetch_one(conn)
    .await
    .map_db(Entity::Tenant)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Tenants (every status but deleted) per database server, in one query.
pub(crate) async fn count_by_server(conn: &mut PgConnection) -> Result<BTreeMap<ServerId, u64>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT server_id, count(*) FROM tm_tenants WHERE status <> 'deleted' GROUP BY server_id",
    )
    .fetch_all(conn)
    .await
    .map_db(Entity::Tenant)?;
    rows.into_iter()
        .map(|(server, n)| {
            let server = ServerId::new(server)
                .map_err(|e| Error::internal(format!("corrupt server_id in tm_tenants: {e}")))?;
            Ok((server, u64::try_from(n).unwrap_or(0)))
        })
        .collect()
}

/// Applies a partial update under a row lock; the caller commits.
pub(crate) async fn update(
    conn: &mut PgConnection,
    id: TenantId,
    update: TenantUpdate,
) -> Result<Tenant> {
    update.validate()?;
    let mut tenant = by_id(conn, id, true)
        .await?
        .ok_or_else(|| Error::not_found(Entity::Tenant, id))?;
    update.apply(&mut tenant, OffsetDateTime::now_utc());
    let sql = format!(
        "UPDATE tm_tenants SET name = $2, plan = $3, quota = $4, domain = $5, server_id = $6, \
         database_name = $7, schema_name = $8, updated_at = $9 WHERE id = $1 \
         RETURNING {TENANT_COLUMNS}"
    );
    sqlx::query_as::<_, TenantRow>(AssertSqlSafe(sql))
        .bind(id.as_uuid())
        .bind(&tenant.name)
        .bind(tenant.plan.as_str())
        .bind(quota_json(tenant.quota.as_ref())?)
        .bind(tenant.domain.as_ref().map(|d| d.to_ascii_lowercase()))
        .bind(tenant.placement.server.as_str())
        .bind(&tenant.placement.database)
        .bind(&tenant.placement.schema)
        .bind(tenant.updated_at)
        .fetch_one(conn)
        .await
        .map_db(Entity::Tenant)?
        .try_into()
}

/// Moves a tenant from its current status to `to`, if [`TenantStatus::can_transition_to`]
/// allows it. The `UPDATE ... WHERE status = <seen>` makes racing transitions safe: the loser
/// matches no row and reports `InvalidTransition` from the status it finds.
pub(crate) async fn transition(
    conn: &mut PgConnection,
    id: TenantId,
    to: TenantStatus,
    reason: Option<String>,
) -> Result<Tenant> {
    let current = by_id(conn, id, false)
        .await?
        .ok_or_else(|| Error::not_found(Entity::Tenant, id))?;
    let refuse = |from: TenantStatus| Error::InvalidTransition {
        tenant: id,
        from,
        to,
    };
    if !current.status.can_transition_to(to) {
        return Err(refuse(current.status));
    }
    let sql = format!(
        "UPDATE tm_tenants SET status = $3, status_reason = $4, updated_at = $5 \
         WHERE id = $1 AND status = $2 RETURNING {TENANT_COLUMNS}"
    );
    let row = sqlx::query_as::<_, TenantRow>(AssertSqlSafe(sql))
        .bind(id.as_uuid())
        .bind(current.status.as_str())
        .bind(to.as_str())
        .bind(reason)
        .bind(OffsetDateTime::now_utc())
        .fetch_optional(&mut *conn)
        .await
        .map_db(Entity::Tenant)?;
    match row {
        Some(row) => row.try_into(),
        None => match by_id(conn, id, false).await? {
            Some(now) => Err(refuse(now.status)),
            None => Err(Error::not_found(Entity::Tenant, id)),
        },
    }
}

/// Deletes a `Deleted` tenant with its users (cascade) and its provisioning and migration
/// rows, in one statement.
pub(crate) async fn purge(conn: &mut PgConnection, id: TenantId) -> Result<()> {
    let done = sqlx::query(
        "WITH gone AS (DELETE FROM tm_tenants WHERE id = $1 AND status = 'deleted' RETURNING id), \
              s AS (DELETE FROM tm_provision_steps WHERE tenant_id IN (SELECT id FROM gone)), \
              p AS (DELETE FROM tm_provision_state WHERE tenant_id IN (SELECT id FROM gone)), \
              m AS (DELETE FROM tm_tenant_migrations WHERE tenant_id IN (SELECT id FROM gone)) \
         SELECT count(*) FROM gone",
    )
    .bind(id.as_uuid())
    .fetch_one(&mut *conn)
    .await
    .map_db(Entity::Tenant)?;
    let purged: i64 = sqlx::Row::try_get(&done, 0).map_db(Entity::Tenant)?;
    if purged == 1 {
        return Ok(());
    }
    match by_id(conn, id, false).await? {
        Some(t) => Err(Error::InvalidTransition {
            tenant: id,
            from: t.status,
            to: TenantStatus::Deleted,
        }),
        None => Err(Error::not_found(Entity::Tenant, id)),
    }
}
