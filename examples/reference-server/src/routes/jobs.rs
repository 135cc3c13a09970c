//! Host jobs under `/api/admin`: enqueue a job of a registered kind for a tenant, see the
//! kinds and the queue, and keep recurring schedules per tenant.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use tenant_manager::{
    Error, MAX_JOB_DELAY, MAX_SCHEDULE_INTERVAL, MIN_SCHEDULE_INTERVAL, Schedule, TenantId,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::{Body, PathParams};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(enqueue_job))
        .routes(routes!(host_jobs))
        .routes(routes!(list_schedules))
        .routes(routes!(put_schedule, delete_schedule))
}

type JsonObject = serde_json::Map<String, serde_json::Value>;

/// A job to run for one tenant.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnqueueRequest {
    /// A registered kind (see `GET /api/admin/jobs`), such as `demo.count_companies`.
    kind: String,
    /// The job's payload (default `{}`).
    #[schema(value_type = Option<Object>)]
    payload: Option<JsonObject>,
    /// Run it no sooner than this many milliseconds from now (default 0, at most 366 days).
    delay_ms: Option<u64>,
}

/// A job that was queued.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct EnqueuedJob {
    job_id: Uuid,
    tenant_id: Uuid,
    kind: String,
}

/// The host's job kinds and the depth of their queue.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct HostJobsView {
    /// The registered kinds.
    kinds: Vec<String>,
    /// Jobs waiting (delayed or held ones included).
    ready: u64,
    /// Jobs running.
    in_flight: u64,
    /// Jobs that failed on every attempt.
    dead: u64,
}

/// A recurring job of one tenant.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScheduleRequest {
    /// A registered kind.
    kind: String,
    /// The payload of every job (default `{}`).
    #[schema(value_type = Option<Object>)]
    payload: Option<JsonObject>,
    /// Interval in milliseconds (1,000 to 366 days).
    every_ms: u64,
}

/// A recurring job of one tenant, as stored.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ScheduleView {
    tenant_id: Uuid,
    name: String,
    kind: String,
    #[schema(value_type = Object)]
    payload: serde_json::Value,
    every_ms: u64,
}

impl From<&Schedule> for ScheduleView {
    fn from(s: &Schedule) -> Self {
        Self {
            tenant_id: *s.tenant_id.as_uuid(),
            name: s.name.clone(),
            kind: s.kind.clone(),
            payload: s.payload.clone(),
            every_ms: u64::try_from(s.every.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// Shortest interval the API accepts: one second (the toolkit's floor is lower, for tests).
const MIN_API_INTERVAL: Duration = Duration::from_secs(1);

fn invalid(field: &'static str, reason: &'static str) -> ApiError {
    ApiError::Toolkit(Error::invalid(field, reason))
}

/// Queues a job of a registered kind for the tenant; a worker runs it inside that tenant's
/// context (its storage, a span naming it), holds it while the tenant is suspended, and
/// serves tenants in turn.
#[utoipa::path(post, path = "/api/admin/tenants/{id}/jobs", tag = "admin", security(("admin_key" = [])),
    params(("id" = Uuid, Path, description = "Tenant id")),
    request_body = EnqueueRequest,
    responses(
        (status = 202, description = "Queued", body = EnqueuedJob),
        (status = 400, description = "A field is invalid (`field` names it: `kind`, `delay_ms`, `payload`)", body = ErrorBody),
        (status = 401, description = "Missing or wrong X-Admin-Key", body = ErrorBody),
        (status = 403, description = "The tenant is suspended", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 409, description = "The tenant is not active yet (or any more)", body = ErrorBody),
        (status = 503, description = "The queue is unavailable", body = ErrorBody),
    ))]
pub(crate) async fn enqueue_job(
    State(state): State<AppState>,
    PathParams(id): PathParams<TenantId>,
    Body(request): Body<EnqueueRequest>,
) -> Result<(StatusCode, Json<EnqueuedJob>), ApiError> {
    let delay = Duration::from_millis(request.delay_ms.unwrap_or(0));
    if delay > MAX_JOB_DELAY {
        return Err(invalid("delay_ms", "must be at most 366 days"));
    }
    let payload = serde_json::Value::Object(request.payload.unwrap_or_default());
    let job_id = state
        .services
        .host_jobs
        .enqueue_in(id, &request.kind, payload, delay)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(EnqueuedJob {
            job_id: *job_id.as_uuid(),
            tenant_id: *id.as_uuid(),
            kind: request.kind,
        }),
    ))
}

/// The registered host job kinds and the depth of their queue.
#[utoipa::path(get, path = "/api/admin/jobs", tag = "admin", security(("admin_key" = [])),
    responses(
        (status = 200, description = "Kinds and queue depth", body = HostJobsView),
        (status = 401, description = "Missing or wrong X-Admin-Key", body = ErrorBody),
        (status = 503, description = "The queue is unavailable", body = ErrorBody),
    ))]
pub(crate) async fn host_jobs(
    State(state): State<AppState>,
) -> Result<Json<HostJobsView>, ApiError> {
    let jobs = &state.services.host_jobs;
    let stats = jobs.queue().stats().await?;
    Ok(Json(HostJobsView {
        kinds: jobs.kinds().map(str::to_owned).collect(),
        ready: stats.ready,
        in_flight: stats.in_flight,
        dead: stats.dead,
    }))
}

/// The tenant's recurring jobs.
#[utoipa::path(get, path = "/api/admin/tenants/{id}/schedules", tag = "admin", security(("admin_key" = [])),
    params(("id" = Uuid, Path, description = "Tenant id")),
    responses(
        (status = 200, description = "The schedules, by name", body = [ScheduleView]),
        (status = 401, description = "Missing or wrong X-Admin-Key", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ))]
pub(crate) async fn list_schedules(
    State(state): State<AppState>,
    PathParams(id): PathParams<TenantId>,
) -> Result<Json<Vec<ScheduleView>>, ApiError> {
    state.services.manager.get(id).await?;
    let schedules = state.services.host_jobs.schedules(id).await?;
    Ok(Json(schedules.iter().map(ScheduleView::from).collect()))
}

/// Adds or replaces the tenant's recurring job `name`: a job of `kind` every `every_ms`, from
/// one interval from now; every instance shares it, and each tick runs once.
#[utoipa::path(put, path = "/api/admin/tenants/{id}/schedules/{name}", tag = "admin", security(("admin_key" = [])),
    params(
        ("id" = Uuid, Path, description = "Tenant id"),
        ("name" = String, Path, description = "Schedule name, 1 to 64 of [a-z0-9_.]"),
    ),
    request_body = ScheduleRequest,
    responses(
        (status = 200, description = "Stored", body = ScheduleView),
        (status = 400, description = "A field is invalid (`field` names it: `name`, `kind`, `every_ms`)", body = ErrorBody),
        (status = 401, description = "Missing or wrong X-Admin-Key", body = ErrorBody),
        (status = 403, description = "The tenant is suspended", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 409, description = "The tenant is not active yet (or any more)", body = ErrorBody),
        (status = 503, description = "The schedule store is unavailable", body = ErrorBody),
    ))]
pub(crate) async fn put_schedule(
    State(state): State<AppState>,
    PathParams((id, name)): PathParams<(TenantId, String)>,
    Body(request): Body<ScheduleRequest>,
) -> Result<Json<ScheduleView>, ApiError> {
    let every = Duration::from_millis(request.every_ms);
    if every < MIN_API_INTERVAL.max(MIN_SCHEDULE_INTERVAL) || every > MAX_SCHEDULE_INTERVAL {
        return Err(invalid("every_ms", "must be 1,000 ms to 366 days"));
    }
    let payload = serde_json::Value::Object(request.payload.unwrap_or_default());
    let schedule = state
        .services
        .host_jobs
        .schedule(id, &name, &request.kind, payload, every)
        .await?;
    Ok(Json(ScheduleView::from(&schedule)))
}

/// Stops the tenant's recurring job `name`.
#[utoipa::path(delete, path = "/api/admin/tenants/{id}/schedules/{name}", tag = "admin", security(("admin_key" = [])),
    params(
        ("id" = Uuid, Path, description = "Tenant id"),
        ("name" = String, Path, description = "Schedule name"),
    ),
    responses(
        (status = 204, description = "Stopped"),
        (status = 401, description = "Missing or wrong X-Admin-Key", body = ErrorBody),
        (status = 404, description = "No such schedule (`field`: `name`)", body = ErrorBody),
    ))]
pub(crate) async fn delete_schedule(
    State(state): State<AppState>,
    PathParams((id, name)): PathParams<(TenantId, String)>,
) -> Result<StatusCode, ApiError> {
    if state.services.host_jobs.unschedule(id, &name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::Http {
            status: StatusCode::NOT_FOUND,
            code: "schedule_not_found",
            message: "no such schedule".to_owned(),
            field: Some("name"),
        })
    }
}
