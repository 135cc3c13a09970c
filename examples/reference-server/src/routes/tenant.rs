//! `GET /api/tenant`: the caller's tenant, its quota and usage.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use tenant_manager::UsageKind;
use tenant_manager::tower::extract::Tenant;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::views::{QuotaView, TenantView};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(current))
}

/// Usage counted against the quota.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Usage {
    users: u64,
    storage_bytes: u64,
}

/// The caller's tenant with the quota that applies and its usage.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct CurrentTenant {
    #[serde(flatten)]
    tenant: TenantView,
    quota: QuotaView,
    usage: Usage,
}

/// The caller's tenant (from its access token), with quota and usage.
#[utoipa::path(get, path = "/api/tenant", tag = "tenant",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's tenant", body = CurrentTenant),
        (status = 401, description = "No valid access token", body = ErrorBody),
        (status = 403, description = "The tenant is suspended", body = ErrorBody),
        (status = 409, description = "The tenant is not ready (provisioning)", body = ErrorBody),
    ))]
pub(crate) async fn current(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
) -> Result<Json<CurrentTenant>, ApiError> {
    let manager = &state.services.manager;
    let users = manager.usage(tenant.id, UsageKind::Users).await?;
    let storage_bytes = manager.usage(tenant.id, UsageKind::StorageBytes).await?;
    Ok(Json(CurrentTenant {
        quota: QuotaView::from(&manager.effective_quota(&tenant)),
        tenant: TenantView::from(&tenant),
        usage: Usage {
            users,
            storage_bytes,
        },
    }))
}
