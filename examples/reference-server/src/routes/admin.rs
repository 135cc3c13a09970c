//! The operator API under `/api/admin`, behind the `X-Admin-Key` header.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use tenant_manager::manager::Registration;
use tenant_manager::{
    Isolation, Plan, PoolStats, QuotaPolicy, RateLimit, TenantId, TenantQuery, TenantStatus,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::auth::{RegisterRequest, Registered, register};
use super::extract::{Body, PathParams, QueryParams};
use super::views::{BackupView, TenantView, tenant_reply};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tenants, create_tenant))
        .routes(routes!(get_tenant, delete_tenant))
        .routes(routes!(suspend))
        .routes(routes!(resume))
        .routes(routes!(retry_provisioning))
        .routes(routes!(put_quota))
        .routes(routes!(create_backup))
        .routes(routes!(pools))
}

/// Filter and cursor of the tenant list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Only tenants in this status.
    status: Option<String>,
    /// Only tenants on this plan.
    plan: Option<String>,
    /// Only tenants with this isolation.
    isolation: Option<String>,
    /// Start after this tenant id (the previous page's `next`).
    after: Option<Uuid>,
    /// Page size, 1 to 500 (default 50).
    limit: Option<u32>,
}

/// One page of tenants, in creation order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct TenantPage {
    items: Vec<TenantView>,
    /// Pass as `after` for the next page; absent on the last page.
    next: Option<Uuid>,
}

/// Tenants, filtered, in creation order.
#[utoipa::path(get, path = "/api/admin/tenants", tag = "admin", security(("admin_key" = [])),
    params(ListParams),
    responses(
        (status = 200, description = "One page of tenants", body = TenantPage),
        (status = 400, description = "A filter is invalid", body = ErrorBody),
        (status = 401, description = "Missing or wrong X-Admin-Key", body = ErrorBody),
    ))]
pub(crate) async fn list_tenants(
    State(state): State<AppState>,
    QueryParams(params): QueryParams<ListParams>,
) -> Result<Json<TenantPage>, ApiError> {
    let status = params
        .status
        .as_deref()
        .map(str::parse::<TenantStatus>)
        .transpose()?;
    let plan = params.plan.map(Plan::new).transpose()?;
    let isolation = params
        .isolation
        .as_deref()
        .map(str::parse::<Isolation>)
        .transpose()?;
    let query = TenantQuery::default()
        .with_status(status)
        .with_plan(plan)
        .with_isolation(isolation)
        .with_after(params.after.map(TenantId::from_uuid))
        .with_limit(params.limit.unwrap_or(50));
    let page = state.services.manager.list(&query).await?;
    Ok(Json(TenantPage {
        items: page.items.iter().map(TenantView::admin).collect(),
        next: page.next.map(|id| *id.as_uuid()),
    }))
}

/// Body of `POST /api/admin/tenants`: a registration, plus where the tenant goes.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateTenantRequest {
    /// Display name of the organisation.
    #[schema(example = "Acme Corp", min_length = 1, max_length = 200)]
    organization_name: String,
    /// The owner's e-mail (unique).
    #[schema(example = "owner@acme.example.com", format = "email")]
    admin_email: String,
    /// The owner's password.
    #[schema(example = "Acme-Owner-2024!", min_length = 8, max_length = 128)]
    admin_password: String,
    /// Slug; derived from the name if absent.
    #[serde(default)]
    #[schema(example = "acme", pattern = "^[a-z][a-z0-9_]{2,47}$")]
    slug: Option<String>,
    /// `database`, `schema` or `shared`; the server's default if absent.
    #[serde(default)]
    #[schema(example = "database")]
    isolation: Option<String>,
    /// Region the tenant is pinned to (`REGION` if absent): with `TENANT_SERVERS` declaring
    /// regions, it goes to a server of that region.
    #[serde(default)]
    #[schema(example = "eu")]
    region: Option<String>,
    /// The Postgres server to place it on (an id of `TENANT_SERVERS`, or `default`), instead
    /// of the placement policy's choice.
    #[serde(default)]
    #[schema(example = "pg2")]
    server: Option<String>,
}

impl From<CreateTenantRequest> for Registration {
    fn from(request: CreateTenantRequest) -> Self {
        let mut registration = Registration::from(RegisterRequest {
            organization_name: request.organization_name,
            admin_email: request.admin_email,
            admin_password: request.admin_password,
            slug: request.slug,
            isolation: request.isolation,
        });
        registration.region = request.region;
        registration.server = request.server;
        registration
    }
}

/// Creates an organisation (a tenant and its owner) of any isolation, `database` included,
/// whatever `SELF_SERVICE_ISOLATION` opens to anonymous callers, on the server the placement
/// policy picks or the one `server` names. Answers as registration does, with an access
/// token for the owner.
#[utoipa::path(post, path = "/api/admin/tenants", tag = "admin", security(("admin_key" = [])),
    request_body = CreateTenantRequest,
    responses(
        (status = 201, description = "Created; the tenant is active", body = Registered),
        (status = 202, description = "Created; the tenant is being provisioned", body = Registered),
        (status = 400, description = "A field is invalid (`field` names it)", body = ErrorBody),
        (status = 401, description = "Missing or wrong X-Admin-Key", body = ErrorBody),
        (status = 409, description = "The e-mail or slug is taken", body = ErrorBody),
        (status = 503, description = "Provisioning failed (`provisioning_failed`, `tenant_id`, `Retry-After`), or every Postgres server is full (`no_server_capacity`)", body = ErrorBody),
    ))]
pub(crate) async fn create_tenant(
    State(state): State<AppState>,
    Body(request): Body<CreateTenantRequest>,
) -> Result<(StatusCode, Json<Registered>), ApiError> {
    register(&state, Registration::from(request)).await
}

/// One tenant.
#[utoipa::path(get, path = "/api/admin/tenants/{id}", tag = "admin", security(("admin_key" = [])),
    params(("id" = Uuid, Path, description = "Tenant id")),
    responses(
        (status = 200, description = "The tenant", body = TenantView),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ))]
pub(crate) async fn get_tenant(
    State(state): State<AppState>,
    PathParams(id): PathParams<TenantId>,
) -> Result<Json<TenantView>, ApiError> {
    tenant_reply(state.services.manager.get(id).await)
}

/// Deletes a tenant and drops its storage (`202` while a worker drops it).
#[utoipa::path(delete, path = "/api/admin/tenants/{id}", tag = "admin", security(("admin_key" = [])),
    params(("id" = Uuid, Path, description = "Tenant id")),
    responses(
        (status = 200, description = "Deleted", body = TenantView),
        (status = 202, description = "Deletion queued", body = TenantView),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 409, description = "The tenant cannot be deleted in its status", body = ErrorBody),
    ))]
pub(crate) async fn delete_tenant(
    State(state): State<AppState>,
    PathParams(id): PathParams<TenantId>,
) -> Result<(StatusCode, Json<TenantView>), ApiError> {
    let tenant = state.services.admin.delete(id).await?;
    let status = if tenant.status == TenantStatus::Deleted {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(TenantView::admin(&tenant))))
}

/// Body of the suspend call (optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SuspendRequest {
    /// Why (kept on the tenant).
    #[serde(default)]
    reason: Option<String>,
}

/// Suspends a tenant: every instance refuses its requests with `403`.
#[utoipa::path(post, path = "/api/admin/tenants/{id}/suspend", tag = "admin", security(("admin_key" = [])),
    params(("id" = Uuid, Path, description = "Tenant id")),
    request_body(content = Option<SuspendRequest>, description = "Optional reason"),
    responses(
        (status = 200, description = "Suspended", body = TenantView),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 409, description = "The tenant is not active", body = ErrorBody),
    ))]
pub(crate) async fn suspend(
    State(state): State<AppState>,
    PathParams(id): PathParams<TenantId>,
    body: Bytes,
) -> Result<Json<TenantView>, ApiError> {
    let request: SuspendRequest = if body.iter().all(u8::is_ascii_whitespace) {
        SuspendRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::from(tenant_manager::Error::invalid("body", e.to_string())))?
    };
    let reason = request
        .reason
        .unwrap_or_else(|| "suspended by an operator".to_owned());
    tenant_reply(state.services.admin.suspend(id, &reason).await)
}

/// Resumes a suspended tenant.
#[utoipa::path(post, path = "/api/admin/tenants/{id}/resume", tag = "admin", security(("admin_key" = [])),
    params(("id" = Uuid, Path, description = "Tenant id")),
    responses(
        (status = 200, description = "Active again", body = TenantView),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 409, description = "The tenant is not suspended", body = ErrorBody),
    ))]
pub(crate) async fn resume(
    State(state): State<AppState>,
    PathParams(id): PathParams<TenantId>,
) -> Result<Json<TenantView>, ApiError> {
    tenant_reply(state.services.admin.resume(id).await)
}

/// Provisions a pending, failed or stuck provisioning tenant again; an active tenant is
/// answered as it is. `202` (status `provisioning`) when a worker provisions it.
#[utoipa::path(post, path = "/api/admin/tenants/{id}/retry-provisioning", tag = "admin", security(("admin_key" = [])),
    params(("id" = Uuid, Path, description = "Tenant id")),
    responses(
        (status = 200, description = "Provisioned (`active`), or failed again (`failed`, `status_reason` says why)", body = TenantView),
        (status = 202, description = "Provisioning queued", body = TenantView),
        (status = 401, description = "Missing or wrong X-Admin-Key", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 409, description = "The tenant is suspended, deleting or deleted", body = ErrorBody),
    ))]
pub(crate) async fn retry_provisioning(
    State(state): State<AppState>,
    PathParams(id): PathParams<TenantId>,
) -> Result<(StatusCode, Json<TenantView>), ApiError> {
    let tenant = state.services.admin.retry_provisioning(id).await?;
    let status = if tenant.status == TenantStatus::Provisioning {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(TenantView::admin(&tenant))))
}

/// A request rate.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RateInput {
    limit: u64,
    window_ms: u64,
}

/// A tenant's quota override.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct QuotaInput {
    rate: RateInput,
    max_users: u64,
    max_storage_bytes: u64,
    max_connections: u32,
}

/// Sets a tenant's quota override; `null` clears it (the plan's policy applies again).
#[utoipa::path(put, path = "/api/admin/tenants/{id}/quota", tag = "admin", security(("admin_key" = [])),
    params(("id" = Uuid, Path, description = "Tenant id")),
    request_body(content = Option<QuotaInput>, description = "The override, or null"),
    responses(
        (status = 200, description = "Updated", body = TenantView),
        (status = 400, description = "A limit is out of range", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 409, description = "The tenant is deleting or deleted (field `status`)", body = ErrorBody),
    ))]
pub(crate) async fn put_quota(
    State(state): State<AppState>,
    PathParams(id): PathParams<TenantId>,
    Body(quota): Body<Option<QuotaInput>>,
) -> Result<Json<TenantView>, ApiError> {
    let policy = quota.map(|q| QuotaPolicy {
        rate: RateLimit {
            limit: q.rate.limit,
            window_ms: q.rate.window_ms,
        },
        max_users: q.max_users,
        max_storage_bytes: q.max_storage_bytes,
        max_connections: q.max_connections,
        ..QuotaPolicy::default()
    });
    tenant_reply(state.services.admin.update_quota(id, policy).await)
}

/// Takes a backup of a tenant's data now.
#[utoipa::path(post, path = "/api/admin/tenants/{id}/backups", tag = "admin", security(("admin_key" = [])),
    params(("id" = Uuid, Path, description = "Tenant id")),
    responses(
        (status = 201, description = "Backed up", body = BackupView),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 409, description = "The tenant is not active or suspended (field `status`)", body = ErrorBody),
        (status = 503, description = "The database or the backup tools are unavailable", body = ErrorBody),
    ))]
pub(crate) async fn create_backup(
    State(state): State<AppState>,
    PathParams(id): PathParams<TenantId>,
) -> Result<(StatusCode, Json<BackupView>), ApiError> {
    let record = state.services.admin.backup_tenant(id).await?;
    Ok((StatusCode::CREATED, Json(BackupView::from(record))))
}

/// Connection counts of the pool manager (all zero in embedded mode, which holds none).
#[utoipa::path(get, path = "/api/admin/pools", tag = "admin", security(("admin_key" = [])),
    responses((status = 200, description = "Pool statistics", body = Object)))]
pub(crate) async fn pools(State(state): State<AppState>) -> Json<PoolStats> {
    Json(
        state
            .services
            .pools
            .as_ref()
            .map(|p| p.pool_stats())
            .unwrap_or_default(),
    )
}
