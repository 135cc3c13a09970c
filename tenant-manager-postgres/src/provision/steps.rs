//! The recorded provisioning steps of each tenant (`tm_provision_steps`) and its last failure
//! (`tm_provision_state`).

use serde::Serialize;
use sqlx::PgPool;
use tenant_manager_core::{Entity, Error, ProvisionStep, Result, TenantId};
use time::OffsetDateTime;

use crate::pg::SqlxResultExt;

/// Steps already done for a tenant.
pub(crate) async fn done(pool: &PgPool, tenant: TenantId) -> Result<Vec<ProvisionStep>> {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT step FROM tm_provision_steps WHERE tenant_id = $1")
            .bind(tenant.as_uuid())
            .fetch_all(pool)
            .await
            .map_db(Entity::Tenant)?;
    names
        .iter()
        .map(|name| {
            ProvisionStep::ALL
                .into_iter()
                .find(|s| s.as_str() == name)
                .ok_or_else(|| Error::internal("corrupt registry row: provision step"))
        })
        .collect()
}

/// Records a step as done (idempotent).
pub(crate) async fn record(pool: &PgPool, tenant: TenantId, step: ProvisionStep) -> Result<()> {
    sqlx::query(
        "INSERT INTO tm_provision_steps (tenant_id, step) VALUES ($1, $2) \
         ON CONFLICT (tenant_id, step) DO NOTHING",
    )
    .bind(tenant.as_uuid())
    .bind(step.as_str())
    .execute(pool)
    .await
    .map_db(Entity::Tenant)?;
    Ok(())
}

/// Counts an attempt (making the tenant's state row on the first).
pub(crate) async fn attempt(pool: &PgPool, tenant: TenantId) -> Result<()> {
    sqlx::query(
        "INSERT INTO tm_provision_state (tenant_id, attempts) VALUES ($1, 1) \
         ON CONFLICT (tenant_id) DO UPDATE SET attempts = tm_provision_state.attempts + 1, \
             updated_at = now()",
    )
    .bind(tenant.as_uuid())
    .execute(pool)
    .await
    .map_db(Entity::Tenant)?;
    Ok(())
}

/// A change to a tenant's provisioning state, as [`update`] writes it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Change<'a> {
    /// The tenant database was created from this template.
    UsedTemplate(&'a str),
    /// A step failed with this error.
    Failed(ProvisionStep, &'a str),
    /// Every step is done: the last failure is cleared.
    Succeeded,
}

/// Records a change of a tenant's provisioning state (after [`attempt`] made its row).
pub(crate) async fn update(pool: &PgPool, tenant: TenantId, change: Change<'_>) -> Result<()> {
    let (template, failed_step, error) = match change {
        Change::UsedTemplate(template) => (Some(template), None, None),
        Change::Failed(step, error) => (None, Some(step.as_str()), Some(error)),
        Change::Succeeded => (None, None, None),
    };
    sqlx::query(
        "UPDATE tm_provision_state SET updated_at = now(), \
             used_template = coalesce($2, used_template), \
             failed_step = CASE WHEN $2::text IS NULL THEN $3 ELSE failed_step END, \
             last_error = CASE WHEN $2::text IS NULL THEN $4 ELSE last_error END \
         WHERE tenant_id = $1",
    )
    .bind(tenant.as_uuid())
    .bind(template)
    .bind(failed_step)
    .bind(error)
    .execute(pool)
    .await
    .map_db(Entity::Tenant)?;
    Ok(())
}

/// Forgets a tenant's steps and state (its storage was dropped).
pub(crate) async fn forget(pool: &PgPool, tenant: TenantId) -> Result<()> {
    sqlx::query(
        "WITH s AS (DELETE FROM tm_provision_steps WHERE tenant_id = $1) \
         DELETE FROM tm_provision_state WHERE tenant_id = $1",
    )
    .bind(tenant.as_uuid())
    .execute(pool)
    .await
    .map_db(Entity::Tenant)?;
    Ok(())
}

/// What the provisioner knows about one tenant's provisioning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ProvisionStatus {
    /// Steps done, in order.
    pub done: Vec<ProvisionStep>,
    /// Calls to `provision` so far.
    pub attempts: u32,
    /// Template database the tenant's database was created from, if any.
    pub used_template: Option<String>,
    /// Step that failed last, if the last attempt failed.
    pub failed_step: Option<ProvisionStep>,
    /// Why it failed.
    pub last_error: Option<String>,
    /// Last change.
    #[serde(with = "time::serde::rfc3339::option")]
    pub updated_at: Option<OffsetDateTime>,
}

#[derive(sqlx::FromRow)]
struct StateRow {
    attempts: i32,
    used_template: Option<String>,
    failed_step: Option<String>,
    last_error: Option<String>,
    updated_at: OffsetDateTime,
}

/// Everything recorded about a tenant's provisioning.
pub(crate) async fn status(pool: &PgPool, tenant: TenantId) -> Result<ProvisionStatus> {
    let mut done = done(pool, tenant).await?;
    done.sort();
    let row: Option<StateRow> = sqlx::query_as(
        "SELECT attempts, used_template, failed_step, last_error, updated_at \
         FROM tm_provision_state WHERE tenant_id = $1",
    )
    .bind(tenant.as_uuid())
    .fetch_optional(pool)
    .await
    .map_db(Entity::Tenant)?;
    let Some(StateRow {
        attempts,
        used_template,
        failed_step,
        last_error,
        updated_at,
    }) = row
    else {
        return Ok(ProvisionStatus {
            done,
            attempts: 0,
            used_template: None,
            failed_step: None,
            last_error: None,
            updated_at: None,
        });
    };
    Ok(ProvisionStatus {
        done,
        attempts: u32::try_from(attempts).unwrap_or(0),
        used_template,
        failed_step: failed_step
            .and_then(|name| ProvisionStep::ALL.into_iter().find(|s| s.as_str() == name)),
        last_error,
        updated_at: Some(updated_at),
    })
}
