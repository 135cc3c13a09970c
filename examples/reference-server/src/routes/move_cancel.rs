//! Cancelling a tenant's move in the operator API: allowed until the move records its switch;
//! lifts the write fence on the source, drops the partial copy at the destination, and makes
//! the tenant active again where it was.

use axum::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::PathParams;
use super::moves::MoveView;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(cancel_move))
}

/// Cancels the tenant's move before its switch. Calling it again finishes a cancel that was
/// interrupted (and answers the cancelled move).
#[utoipa::path(post, path = "/api/admin/tenants/{id}/move/cancel", tag = "admin", security(("admin_key" = [])),
    params(("id" = Uuid, Path, description = "Tenant id")),
    responses(
        (status = 200, description = "The move is cancelled; the tenant is active at its old placement", body = MoveView),
        (status = 400, description = "`id` is not a UUID (field `id`)", body = ErrorBody),
        (status = 404, description = "No such tenant, or it never moved", body = ErrorBody),
        (status = 409, description = "The move is switched already (field `state`)", body = ErrorBody),
    ))]
pub(crate) async fn cancel_move(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<MoveView>, ApiError> {
    let id = tenant_manager::TenantId::parse_field(&id, "id")?;
    let record = state.services.manager.cancel_move(id).await?;
    Ok(Json(record.into()))
}
