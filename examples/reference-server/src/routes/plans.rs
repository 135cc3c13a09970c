//! Plans and what a tenant is on: `GET /api/admin/plans`, `GET/PUT /api/admin/plans/{name}`,
//! `PUT /api/admin/tenants/{id}/plan`, `POST /api/admin/tenants/{id}/usage/storage`.
//!
//! Plans are kept in the plan store (the registry's `tm_plans`, or memory); an edit is read
//! into this instance's plan book at once and into the others' within `PLANS_REFRESH_MS`. A
//! tenant's plan change applies on its next request on every instance (its cached record is
//! invalidated everywhere, as on a suspension).

use axum::Json;
use axum::extract::State;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use tenant_manager::{BackupSchedule, DbLimits, Plan, QuotaPolicy, RateLimit, TenantId};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::{Body, PathParams};
use super::views::{QuotaView, TenantView};
use crate::error::{ApiError, ErrorBody};
use crate::services::{plans, storage};
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_plans))
        .routes(routes!(get_plan, put_plan))
        .routes(routes!(set_plan))
        .routes(routes!(measure_storage))
}

/// Postgres session limits of a plan; absent ones leave the server's settings.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DbLimitsBody {
    /// `statement_timeout` of the tenant's sessions, ms (1 to 86400000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    statement_timeout_ms: Option<u32>,
    /// `work_mem` of the tenant's sessions, kB (64 to 4194304).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    work_mem_kb: Option<u32>,
    /// `CONNECTION LIMIT` of the tenant's login role (1 to 10000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    connection_limit: Option<u32>,
}

impl From<&DbLimits> for DbLimitsBody {
    fn from(db: &DbLimits) -> Self {
        Self {
            statement_timeout_ms: db.statement_timeout_ms,
            work_mem_kb: db.work_mem_kb,
            connection_limit: db.connection_limit,
        }
    }
}

/// A plan's backup schedule: tenants whose newest backup is older than `interval_ms` are
/// backed up by the scheduler (`BACKUP_SCHEDULE_INTERVAL_MS`), then their backups are pruned
/// to the newest of each of the last `keep_daily` days and `keep_weekly` ISO weeks.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BackupScheduleBody {
    /// Longest age of a tenant's newest backup, ms (1000 to 31622400000).
    interval_ms: u64,
    /// Days whose newest backup is kept (0 to 520).
    keep_daily: u32,
    /// ISO weeks whose newest backup is kept (0 to 520; not both 0).
    keep_weekly: u32,
}

impl From<&BackupSchedule> for BackupScheduleBody {
    fn from(s: &BackupSchedule) -> Self {
        Self {
            interval_ms: s.interval_ms,
            keep_daily: s.keep_daily,
            keep_weekly: s.keep_weekly,
        }
    }
}

/// A request rate.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlanRateInput {
    limit: u64,
    window_ms: u64,
}

/// A plan's policy.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlanInput {
    rate: PlanRateInput,
    max_users: u64,
    max_storage_bytes: u64,
    max_connections: u32,
    /// Postgres session limits (optional).
    #[serde(default)]
    db: Option<DbLimitsBody>,
    /// Backup schedule (optional: none backs up on demand only).
    #[serde(default)]
    backup: Option<BackupScheduleBody>,
}

impl From<PlanInput> for QuotaPolicy {
    fn from(input: PlanInput) -> Self {
        let db = input.db.unwrap_or_default();
        QuotaPolicy {
            rate: RateLimit {
                limit: input.rate.limit,
                window_ms: input.rate.window_ms,
            },
            max_users: input.max_users,
            max_storage_bytes: input.max_storage_bytes,
            max_connections: input.max_connections,
            db: DbLimits {
                statement_timeout_ms: db.statement_timeout_ms,
                work_mem_kb: db.work_mem_kb,
                connection_limit: db.connection_limit,
            },
            backup: input.backup.map(|b| BackupSchedule {
                interval_ms: b.interval_ms,
                keep_daily: b.keep_daily,
                keep_weekly: b.keep_weekly,
            }),
        }
    }
}

/// A plan and its policy.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct PlanView {
    name: String,
    quota: QuotaView,
    db: DbLimitsBody,
    /// The backup schedule, when the plan has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    backup: Option<BackupScheduleBody>,
}

impl PlanView {
    fn new(plan: &Plan, policy: &QuotaPolicy) -> Self {
        Self {
            name: plan.to_string(),
            quota: QuotaView::from(policy),
            db: DbLimitsBody::from(&policy.db),
            backup: policy.backup.as_ref().map(BackupScheduleBody::from),
        }
    }
}

/// The stored plans, and the policy of every other plan.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct PlanList {
    /// The policy of plans the store does not hold (the configured defaults).
    default: QuotaView,
    /// The stored plans, by name.
    plans: Vec<PlanView>,
}

/// The stored plans, by name, and the default policy.
#[utoipa::path(get, path = "/api/admin/plans", tag = "admin", security(("admin_key" = [])),
    responses(
        (status = 200, description = "The plans", body = PlanList),
        (status = 401, description = "Missing or wrong X-Admin-Key", body = ErrorBody),
    ))]
pub(crate) async fn list_plans(State(state): State<AppState>) -> Result<Json<PlanList>, ApiError> {
    let stored = state.services.plan_store.list_plans().await?;
    Ok(Json(PlanList {
        default: QuotaView::from(&plans::default_policy(&state.config)),
        plans: stored
            .iter()
            .map(|(plan, policy)| PlanView::new(plan, policy))
            .collect(),
    }))
}

fn plan_name(name: &str) -> Result<Plan, ApiError> {
    Ok(Plan::new(name)?)
}

fn no_such_plan(plan: &Plan) -> ApiError {
    ApiError::Http {
        status: StatusCode::NOT_FOUND,
        code: "plan_not_found",
        message: format!("no plan named {plan} is stored"),
        field: Some("plan"),
    }
}

/// One stored plan.
#[utoipa::path(get, path = "/api/admin/plans/{name}", tag = "admin", security(("admin_key" = [])),
    params(("name" = String, Path, description = "Plan name: 1 to 32 of [a-z0-9_-]")),
    responses(
        (status = 200, description = "The plan", body = PlanView),
        (status = 400, description = "The name is invalid (field `plan`)", body = ErrorBody),
        (status = 401, description = "Missing or wrong X-Admin-Key", body = ErrorBody),
        (status = 404, description = "No such plan is stored (field `plan`)", body = ErrorBody),
    ))]
pub(crate) async fn get_plan(
    State(state): State<AppState>,
    PathParams(name): PathParams<String>,
) -> Result<Json<PlanView>, ApiError> {
    let plan = plan_name(&name)?;
    let stored = state.services.plan_store.list_plans().await?;
    stored
        .iter()
        .find(|(p, _)| *p == plan)
        .map(|(p, policy)| Json(PlanView::new(p, policy)))
        .ok_or_else(|| no_such_plan(&plan))
}

/// Creates or replaces a plan's policy. Tenants on the plan (without an override) get it on
/// their next request here, and on other instances within `PLANS_REFRESH_MS`; its Postgres
/// limits reach their roles at the next storage measurement pass, or at a plan change.
#[utoipa::path(put, path = "/api/admin/plans/{name}", tag = "admin", security(("admin_key" = [])),
    params(("name" = String, Path, description = "Plan name: 1 to 32 of [a-z0-9_-]")),
    request_body = PlanInput,
    responses(
        (status = 200, description = "Stored", body = PlanView),
        (status = 400, description = "The name (field `plan`) or a limit is invalid (the field is named)", body = ErrorBody),
        (status = 401, description = "Missing or wrong X-Admin-Key", body = ErrorBody),
    ))]
pub(crate) async fn put_plan(
    State(state): State<AppState>,
    PathParams(name): PathParams<String>,
    Body(input): Body<PlanInput>,
) -> Result<Json<PlanView>, ApiError> {
    let plan = plan_name(&name)?;
    let policy = QuotaPolicy::from(input);
    policy.validate()?;
    let services = &state.services;
    services.plan_store.put_plan(&plan, &policy).await?;
    plans::reload(&state.config, services.plan_store.as_ref(), &services.plans).await?;
    Ok(Json(PlanView::new(&plan, &policy)))
}

/// The plan to move a tenant to.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlanChange {
    /// A stored plan, or the default plan.
    plan: String,
}

/// Moves a tenant to another plan: its quota and rate (unless it has an override) apply on its
/// next request on every instance, and the plan's Postgres limits are written on its role.
#[utoipa::path(put, path = "/api/admin/tenants/{id}/plan", tag = "admin", security(("admin_key" = [])),
    params(("id" = Uuid, Path, description = "Tenant id")),
    request_body = PlanChange,
    responses(
        (status = 200, description = "Moved", body = TenantView),
        (status = 400, description = "Malformed plan name or unknown plan (field `plan`)", body = ErrorBody),
        (status = 401, description = "Missing or wrong X-Admin-Key", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 409, description = "The tenant is deleting or deleted (field `status`)", body = ErrorBody),
    ))]
pub(crate) async fn set_plan(
    State(state): State<AppState>,
    PathParams(id): PathParams<TenantId>,
    Body(change): Body<PlanChange>,
) -> Result<Json<TenantView>, ApiError> {
    let plan = plan_name(&change.plan)?;
    let services = &state.services;
    let tenant = services.admin.change_plan(id, plan).await?;
    if let Err(error) = storage::apply_role_limits(services, &tenant).await {
        // The plan is changed; the next measurement pass writes the limits again.
        tracing::warn!(tenant = %tenant.id, %error, "plan limits on the role failed");
    }
    Ok(Json(TenantView::from(&tenant)))
}

/// A tenant's storage, just measured.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct StorageUsage {
    tenant_id: Uuid,
    /// Bytes measured (database size, schema size, or the tenant's rows of shared tables).
    storage_bytes: u64,
    /// The tenant's quota; writes are refused with `403 quota_exceeded` once it is reached.
    max_storage_bytes: u64,
}

/// Measures a tenant's storage now and stores it as its `storage_bytes` usage (as the
/// scheduled measurement does every `STORAGE_MEASURE_INTERVAL_MS`).
#[utoipa::path(post, path = "/api/admin/tenants/{id}/usage/storage", tag = "admin", security(("admin_key" = [])),
    params(("id" = Uuid, Path, description = "Tenant id")),
    responses(
        (status = 200, description = "Measured", body = StorageUsage),
        (status = 400, description = "The id is not a UUID (field `path`)", body = ErrorBody),
        (status = 401, description = "Missing or wrong X-Admin-Key", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 409, description = "The tenant has no storage yet", body = ErrorBody),
        (status = 503, description = "Its database server is unreachable", body = ErrorBody),
    ))]
pub(crate) async fn measure_storage(
    State(state): State<AppState>,
    PathParams(id): PathParams<TenantId>,
) -> Result<Json<StorageUsage>, ApiError> {
    let services = &state.services;
    let tenant = services.manager.get(id).await?;
    let storage_bytes = storage::measure(services, &tenant).await?;
    Ok(Json(StorageUsage {
        tenant_id: *tenant.id.as_uuid(),
        storage_bytes,
        max_storage_bytes: services.manager.effective_quota(&tenant).max_storage_bytes,
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_plan_routes_are_in_the_openapi_document() {
        let doc = serde_json::to_value(crate::router::openapi()).unwrap_or_default();
        for (path, method) in [
            ("/api/admin/plans", "get"),
            ("/api/admin/plans/{name}", "get"),
            ("/api/admin/plans/{name}", "put"),
            ("/api/admin/tenants/{id}/plan", "put"),
            ("/api/admin/tenants/{id}/usage/storage", "post"),
        ] {
            assert!(
                doc["paths"][path].get(method).is_some(),
                "{method} {path} missing"
            );
        }
    }
}
