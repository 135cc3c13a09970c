//! Per-tenant migration versions in the global database (`tm_tenant_migrations`).

use sqlx::PgPool;
use tenant_manager_core::{Entity, Result, TenantId};

use crate::error::SqlxResultExt;

/// Longest error text kept for a tenant.
const MAX_ERROR_LEN: usize = 2000;

/// An error and its causes on one line, cut to a length fit for a column.
pub(crate) fn error_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text.truncate(tenant_manager_core::truncate_utf8(&text, MAX_ERROR_LEN).len());
    text
}

/// Records that a tenant is at `version` and clears its last failure.
pub(crate) async fn migrated(pool: &PgPool, tenant: TenantId, version: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO tm_tenant_migrations (tenant_id, version, migrated_at, last_error, failed_at) \
         VALUES ($1, $2, now(), NULL, NULL) \
         ON CONFLICT (tenant_id) DO UPDATE SET version = EXCLUDED.version, \
             migrated_at = now(), last_error = NULL, failed_at = NULL",
    )
    .bind(tenant.as_uuid())
    .bind(version)
    .execute(pool)
    .await
    .map_db(Entity::Tenant)?;
    Ok(())
}

/// Records a failed migration of a tenant. Its version stays where it was, or moves to
/// `reached` when the failing run got that far (migrations applied one by one).
pub(crate) async fn failed(
    pool: &PgPool,
    tenant: TenantId,
    reached: Option<i64>,
    error: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO tm_tenant_migrations (tenant_id, version, last_error, failed_at) \
         VALUES ($1, coalesce($3, 0), $2, now()) \
         ON CONFLICT (tenant_id) DO UPDATE SET \
             version = coalesce($3, tm_tenant_migrations.version), \
             last_error = EXCLUDED.last_error, failed_at = now()",
    )
    .bind(tenant.as_uuid())
    .bind(error)
    .bind(reached)
    .execute(pool)
    .await
    .map_db(Entity::Tenant)?;
    Ok(())
}

/// Forgets a tenant's migration state (its storage was dropped).
pub(crate) async fn forget(pool: &PgPool, tenant: TenantId) -> Result<()> {
    sqlx::query("DELETE FROM tm_tenant_migrations WHERE tenant_id = $1")
        .bind(tenant.as_uuid())
        .execute(pool)
        .await
        .map_db(Entity::Tenant)?;
    Ok(())
}
