//! Moving a tenant to another database server in the operator API: `POST` starts a move
//! (queued for the provisioning worker with async provisioning, else run by this instance in
//! the background) and answers `202` with its status; `GET` shows the tenant's last move.

use axum::Json;
use axum::extract::State;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use tenant_manager::{MoveRecord, Placement, ServerId, TenantId};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{Body, PathParams};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(start_move, move_status))
}

/// Body of `POST /api/admin/tenants/{id}/move`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MoveRequest {
    /// The database server to move the tenant to (`default` or an id of `TENANT_SERVERS`).
    #[schema(example = "pg2")]
    server: String,
    /// For schema and shared tenants: the shared database on that server (default: the
    /// deployment's shared database). Not allowed for database-isolated tenants.
    #[serde(default)]
    database: Option<String>,
}

/// Where a tenant's data is.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct PlacementView {
    server: String,
    database: String,
    schema: Option<String>,
}

impl From<Placement> for PlacementView {
    fn from(p: Placement) -> Self {
        Self {
            server: p.server.as_str().to_owned(),
            database: p.database,
            schema: p.schema,
        }
    }
}

/// A move of a tenant between database servers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct MoveView {
    #[schema(format = "uuid")]
    id: String,
    #[schema(format = "uuid")]
    tenant_id: String,
    from: PlacementView,
    to: PlacementView,
    /// Steps done, in order: `paused`, `drained`, `copied`, `verified`, `switched`,
    /// `resumed`, `old_dropped`.
    done: Vec<String>,
    /// `running` (writes may be paused), `switched` (served from the destination; old storage
    /// kept for the grace period), `completed`, or `cancelled` (before the switch).
    state: String,
    /// Why the last attempt of a step failed (the move resumes there).
    last_error: Option<String>,
    /// When the old storage may be dropped (RFC 3339).
    drop_after: Option<String>,
}

impl From<MoveRecord> for MoveView {
    fn from(m: MoveRecord) -> Self {
        let rfc3339 = |t: time::OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        };
        Self {
            id: m.id.to_string(),
            tenant_id: m.tenant_id.to_string(),
            from: m.from.into(),
            to: m.to.into(),
            done: m.done.iter().map(|s| s.as_str().to_owned()).collect(),
            state: m.state.as_str().to_owned(),
            last_error: m.last_error,
            drop_after: m.drop_after.map(rfc3339),
        }
    }
}

/// Starts moving a tenant to another database server. Writes of the tenant answer `503
/// tenant_moving` with `Retry-After` until the move resumes them; reads go on.
#[utoipa::path(post, path = "/api/admin/tenants/{id}/move", tag = "admin", security(("admin_key" = [])),
    params(("id" = Uuid, Path, description = "Tenant id")),
    request_body = MoveRequest,
    responses(
        (status = 202, description = "The move is recorded and runs in the background", body = MoveView),
        (status = 400, description = "Unknown or same `server`, bad `database`, or `id` not a UUID (the field is named)", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 409, description = "The tenant is not active or already moving (field `status`), its last move is still running (field `tenant`), or the old storage of an earlier move is on that server (field `server`)", body = ErrorBody),
    ))]
pub(crate) async fn start_move(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    Body(body): Body<MoveRequest>,
) -> Result<(StatusCode, Json<MoveView>), ApiError> {
    let id = TenantId::parse_field(&id, "id")?;
    let server = ServerId::new(body.server)?;
    let manager = &state.services.manager;
    let database = body.database.as_deref();
    let record = if state.config.features.async_provisioning {
        manager.move_tenant(id, &server, database).await?
    } else {
        let record = manager.begin_move(id, &server, database).await?;
        let manager = manager.clone();
        tokio::spawn(async move {
            if let Err(error) = manager.run_move(id).await {
                tracing::warn!(tenant = %id, %error, "tenant move stopped; POST again or `tenant-cli tenants move --resume`");
            }
        });
        record
    };
    Ok((StatusCode::ACCEPTED, Json(record.into())))
}

/// The tenant's last move.
#[utoipa::path(get, path = "/api/admin/tenants/{id}/move", tag = "admin", security(("admin_key" = [])),
    params(("id" = Uuid, Path, description = "Tenant id")),
    responses(
        (status = 200, description = "The last move", body = MoveView),
        (status = 400, description = "`id` is not a UUID (field `id`)", body = ErrorBody),
        (status = 404, description = "The tenant never moved", body = ErrorBody),
    ))]
pub(crate) async fn move_status(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<MoveView>, ApiError> {
    let id = TenantId::parse_field(&id, "id")?;
    let record = state
        .services
        .manager
        .move_status(id)
        .await?
        .ok_or_else(|| tenant_manager::Error::not_found(tenant_manager::Entity::Record, id))?;
    Ok(Json(record.into()))
}
