//! Per-tenant migration versions in the global database (`tm_tenant_migrations`).

use sqlx::PgPool;
use tenant_manager_core::{Entity, Result, TenantId};

use crate::pg::SqlxResultExt;

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

/// What happened to a tenant's migrations, as [`record`] writes it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Recorded<'a> {
    /// The tenant is at `version`: its last failure is cleared.
    Migrated(i64),
    /// A run failed with `error`. The version stays where it was, or moves to `reached` when
    /// the failing run got that far (migrations applied one by one).
    Failed {
        /// Newest version applied by the failing run, when known.
        reached: Option<i64>,
        /// The error, from [`error_text`].
        error: &'a str,
    },
}

/// Records a tenant's migration outcome (one upsert of its row).
pub(crate) async fn record(pool: &PgPool, tenant: TenantId, outcome: Recorded<'_>) -> Result<()> {
    let (version, error) = match outcome {
        Recorded::Migrated(version) => (Some(version), None),
        Recorded::Failed { reached, error } => (reached, Some(error)),
    };
    sqlx::query(
        "INSERT INTO tm_tenant_migrations AS m \
             (tenant_id, version, migrated_at, last_error, failed_at) \
         VALUES ($1, coalesce($2, 0), CASE WHEN $3::text IS NULL THEN now() END, $3, \
                 CASE WHEN $3::text IS NOT NULL THEN now() END) \
         ON CONFLICT (tenant_id) DO UPDATE SET version = coalesce($2, m.version), \
             migrated_at = CASE WHEN $3::text IS NULL THEN now() ELSE m.migrated_at END, \
             last_error = EXCLUDED.last_error, failed_at = EXCLUDED.failed_at",
    )
    .bind(tenant.as_uuid())
    .bind(version)
    .bind(error)
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
