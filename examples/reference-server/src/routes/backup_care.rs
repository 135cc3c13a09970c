//! Backup care in the operator API: retention (`POST /api/admin/tenants/{id}/backups/prune`,
//! with a dry run) and restore tests (`POST /api/admin/backups/verify`). Both share their
//! logic with `tenant-cli backups prune|verify` and the scheduler (the manager's
//! `prune_backups` and `verify_latest_backups`).

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::Value;
use tenant_manager::lifecycle::retention::RetentionPolicy;
use tenant_manager::manager::{PruneOutcome, VerifyReport};
use tenant_manager::{BackupId, Error, TenantId};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{Body, PathParams};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(prune_backups))
        .routes(routes!(verify_backups))
}

/// Body of the prune: the retention to apply (default 7 days, 4 weeks) and whether to only
/// report.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PruneRequest {
    /// Days whose newest backup is kept (0 to 520, default 7).
    #[serde(default)]
    #[schema(value_type = Option<u32>)]
    daily: Option<Value>,
    /// ISO weeks whose newest backup is kept (0 to 520, default 4; not both 0).
    #[serde(default)]
    #[schema(value_type = Option<u32>)]
    weekly: Option<Value>,
    /// Report what would be deleted, delete nothing (default false).
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    dry_run: Option<Value>,
}

/// A whole number from 0 to `max`, or `default` when absent.
fn whole(value: Option<&Value>, field: &'static str, max: u64, default: u64) -> Result<u64, Error> {
    match value {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v.as_u64().filter(|n| *n <= max).ok_or_else(|| {
            Error::invalid(field, format!("must be a whole number from 0 to {max}"))
        }),
    }
}

impl PruneRequest {
    fn parse(&self) -> Result<(RetentionPolicy, bool), Error> {
        let daily = whole(self.daily.as_ref(), "daily", 520, 7)?;
        let weekly = whole(self.weekly.as_ref(), "weekly", 520, 4)?;
        let dry_run = match &self.dry_run {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(Error::invalid("dry_run", "must be true or false")),
        };
        let policy = RetentionPolicy::new(
            u32::try_from(daily).unwrap_or(u32::MAX),
            u32::try_from(weekly).unwrap_or(u32::MAX),
        )?;
        Ok((policy, dry_run))
    }
}

/// Applies a retention policy to a tenant's backups: keeps the newest of each of the last
/// `daily` UTC days and `weekly` ISO weeks, deletes the rest (artifact, then record), or with
/// `dry_run` only says what it would delete.
#[utoipa::path(post, path = "/api/admin/tenants/{id}/backups/prune", tag = "admin", security(("admin_key" = [])),
    params(("id" = Uuid, Path, description = "Tenant id")),
    request_body = PruneRequest,
    responses(
        (status = 200, description = "`dry_run`, `kept` and `deleted` (backup records, newest first)", body = Object),
        (status = 400, description = "A field is invalid (`field` names it: `id`, `daily`, `weekly`, `dry_run`, `body`)", body = ErrorBody),
        (status = 401, description = "Missing or wrong X-Admin-Key", body = ErrorBody),
        (status = 503, description = "The database or the store is unavailable", body = ErrorBody),
    ))]
pub(crate) async fn prune_backups(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    Body(request): Body<PruneRequest>,
) -> Result<Json<PruneOutcome>, ApiError> {
    let id = TenantId::parse_field(&id, "id")?;
    let (policy, dry_run) = request.parse()?;
    let outcome = state
        .services
        .manager
        .prune_backups(id, policy, dry_run)
        .await?;
    Ok(Json(outcome))
}

/// Body of the restore test: one backup, or the newest backup of a sample of tenants.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerifyRequest {
    /// Tenants sampled at random (1 to 1000); absent: every active or suspended tenant.
    #[serde(default)]
    #[schema(value_type = Option<u32>)]
    sample: Option<Value>,
    /// One backup to verify instead of a sample.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = "uuid")]
    backup_id: Option<Value>,
}

/// Restore test: restores the newest backup of each sampled tenant (or the backup named)
/// into a scratch database made for it, marked, and always dropped, and compares the rows of
/// each table with the counts recorded when the backup was taken. `failed` counts the backups
/// that differ (`mismatched` names the tables) or could not be restored (`error`); the gauge
/// `tenant_backup_verify_failed` holds the last run's failures.
#[utoipa::path(post, path = "/api/admin/backups/verify", tag = "admin", security(("admin_key" = [])),
    request_body = VerifyRequest,
    responses(
        (status = 200, description = "`checked`, `passed`, `failed`, `without_backup`, `results` (each `tenant_id`, `backup_id`, `passed`, `tables`, `mismatched` of `table`, `recorded`, `restored`, and `error`)", body = Object),
        (status = 400, description = "A field is invalid (`field` names it: `sample`, `backup_id`, `body`)", body = ErrorBody),
        (status = 401, description = "Missing or wrong X-Admin-Key", body = ErrorBody),
        (status = 404, description = "No such backup", body = ErrorBody),
        (status = 503, description = "The database, store or tools are unavailable", body = ErrorBody),
    ))]
pub(crate) async fn verify_backups(
    State(state): State<AppState>,
    Body(request): Body<VerifyRequest>,
) -> Result<Json<VerifyReport>, ApiError> {
    let sample = match &request.sample {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .filter(|n| (1..=1000).contains(n))
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| Error::invalid("sample", "must be a whole number from 1 to 1000"))?,
        ),
    };
    let backup = match &request.backup_id {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(BackupId::parse_field(s, "backup_id")?),
        Some(_) => return Err(Error::invalid("backup_id", "must be a UUID string").into()),
    };
    let manager = state.services.manager.clone();
    // On its own task: a request that times out does not stop a restore test halfway, so
    // its scratch database is always dropped.
    let report = tokio::spawn(async move {
        match backup {
            Some(backup) => manager.verify_backup(backup).await.map(|one| {
                let mut report = VerifyReport::default();
                report.checked = 1;
                if one.passed {
                    report.passed = 1;
                } else {
                    report.failed = 1;
                }
                report.results.push(one);
                report
            }),
            None => manager.verify_latest_backups(sample).await,
        }
    })
    .await
    .map_err(|e| Error::internal(format!("the restore test stopped: {e}")))??;
    Ok(Json(report))
}
