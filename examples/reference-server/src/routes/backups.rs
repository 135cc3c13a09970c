//! Backups in the operator API: a tenant's list, and restores (into a tenant, or as a new
//! one). Taking a backup is `POST /api/admin/tenants/{id}/backups` in [`super::admin`].

use axum::Json;
use axum::extract::State;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use tenant_manager::manager::RestoreAsNew;
use tenant_manager::{BackupId, Error, TenantId};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::{Body, PathParams};
use super::invitations::Invited;
use super::views::{BackupView, TenantSummary};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_backups))
        .routes(routes!(restore_backup))
}

/// A tenant's backups, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct BackupList {
    items: Vec<BackupView>,
}

/// Lists a tenant's backups, newest first (those of a deleted tenant too).
#[utoipa::path(get, path = "/api/admin/tenants/{id}/backups", tag = "admin", security(("admin_key" = [])),
    params(("id" = Uuid, Path, description = "Tenant id")),
    responses(
        (status = 200, description = "The backups", body = BackupList),
        (status = 400, description = "`id` is not a UUID (field `id`)", body = ErrorBody),
        (status = 404, description = "No such tenant, and no backups of it", body = ErrorBody),
    ))]
pub(crate) async fn list_backups(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<BackupList>, ApiError> {
    let id = TenantId::parse_field(&id, "id")?;
    let records = state.services.manager.list_backups(id).await?;
    Ok(Json(BackupList {
        items: records.into_iter().map(BackupView::from).collect(),
    }))
}

/// Body of `POST /api/admin/backups/{backup_id}/restore`: exactly one of `into` and
/// `new_tenant`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RestoreRequest {
    /// Id of an existing, active or suspended tenant of the backup's isolation whose data is
    /// replaced.
    #[serde(default)]
    #[schema(format = "uuid")]
    into: Option<String>,
    /// A tenant to create (of the backup's isolation) and restore into.
    #[serde(default)]
    new_tenant: Option<NewTenantRequest>,
}

/// The tenant a restore creates.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewTenantRequest {
    /// Display name; the slug if absent.
    #[serde(default)]
    #[schema(example = "Acme (restored)")]
    name: Option<String>,
    /// Slug (3 to 48 of `[a-z0-9_]`, starting with a letter).
    #[serde(default)]
    #[schema(example = "acme_restored", pattern = "^[a-z][a-z0-9_]{2,47}$")]
    slug: Option<String>,
    /// E-mail of the new tenant's owner. Users are not part of a backup, so without it the
    /// tenant has no user; with it the answer carries an owner's invitation (valid
    /// `INVITATION_TTL_SECONDS`), accepted with `POST /api/auth/accept-invitation`.
    #[serde(default)]
    #[schema(example = "owner@acme.example.com", format = "email")]
    owner_email: Option<String>,
}

/// What a restore did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Restored {
    backup_id: Uuid,
    /// The tenant whose data is now the backup's.
    tenant: TenantSummary,
    /// Whether the tenant was created by this call.
    created: bool,
    /// The owner's invitation and its token (shown once), for a new tenant given
    /// `new_tenant.owner_email`; `null` otherwise.
    owner_invitation: Option<Invited>,
}

/// Restores a backup into an existing tenant (`into`), or as a new tenant (`new_tenant`):
/// one call registers and provisions a tenant of the backup's isolation, then restores into
/// it (the tenant is removed again if that fails). Users are not in backups: name the new
/// tenant's owner with `new_tenant.owner_email` to get an owner's invitation in the answer.
#[utoipa::path(post, path = "/api/admin/backups/{backup_id}/restore", tag = "admin", security(("admin_key" = [])),
    params(("backup_id" = Uuid, Path, description = "Backup id")),
    request_body = RestoreRequest,
    responses(
        (status = 200, description = "Restored into the existing tenant", body = Restored),
        (status = 201, description = "Restored as a new tenant", body = Restored),
        (status = 400, description = "A field is invalid (`field` names it: `backup_id`, `into`, `new_tenant`, `new_tenant.name`, `new_tenant.slug`, `new_tenant.owner_email`, `isolation`)", body = ErrorBody),
        (status = 404, description = "No such backup", body = ErrorBody),
        (status = 409, description = "The slug is taken (`new_tenant.slug`), or the tenant `into` is not active or suspended", body = ErrorBody),
        (status = 503, description = "The database, store or backup tools are unavailable", body = ErrorBody),
    ))]
pub(crate) async fn restore_backup(
    State(state): State<AppState>,
    PathParams(backup_id): PathParams<String>,
    Body(request): Body<RestoreRequest>,
) -> Result<(StatusCode, Json<Restored>), ApiError> {
    let backup = BackupId::parse_field(&backup_id, "backup_id")?;
    let manager = &state.services.admin;
    let (status, tenant, created, owner_invitation) = match (request.into, request.new_tenant) {
        (Some(into), None) => {
            let into = TenantId::parse_field(&into, "into")?;
            let tenant = manager.restore_backup(backup, into).await?;
            (StatusCode::OK, tenant, false, None)
        }
        (None, Some(new)) => {
            let slug = new
                .slug
                .ok_or_else(|| Error::invalid("new_tenant.slug", "is required"))?;
            let name = new.name.unwrap_or_else(|| slug.clone());
            let mut wanted = RestoreAsNew::new(name, slug);
            if let Some(email) = new.owner_email {
                wanted = wanted.with_owner(email, state.config.security.invitation_ttl);
            }
            let restored = manager.restore_as_new(backup, wanted).await?;
            let invited = restored.owner_invitation.as_ref().map(Invited::from);
            (StatusCode::CREATED, restored.tenant, true, invited)
        }
        (Some(_), Some(_)) => {
            return Err(
                Error::invalid("new_tenant", "give either into or new_tenant, not both").into(),
            );
        }
        (None, None) => {
            return Err(Error::invalid("into", "give into (a tenant id) or new_tenant").into());
        }
    };
    Ok((
        status,
        Json(Restored {
            backup_id: *backup.as_uuid(),
            tenant: TenantSummary::from(&tenant),
            created,
            owner_invitation,
        }),
    ))
}
