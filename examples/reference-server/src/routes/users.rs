//! `GET /api/tenant/users`, `PATCH /api/tenant/users/{id}`, `DELETE /api/tenant/users/{id}`:
//! owners and admins manage the users of the tenant their access token names.

use axum::Json;
use axum::extract::State;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use tenant_manager::UserId;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::caller::{Caller, required};
use super::extract::{Body, PathParams};
use super::views::UserView;
use crate::error::{ApiError, ErrorBody};
use crate::services::sessions;
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(change_role, remove))
}

/// The users of the caller's tenant.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct UserList {
    /// Oldest first.
    users: Vec<UserView>,
}

/// Body of `PATCH /api/tenant/users/{id}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoleChange {
    /// `owner`, `admin` or `member`.
    #[schema(example = "admin")]
    #[serde(default)]
    role: Option<String>,
}

/// Lists the users of the caller's tenant. Owners and admins only.
#[utoipa::path(get, path = "/api/tenant/users", tag = "users", security(("bearer" = [])),
    responses(
        (status = 200, description = "The tenant's users", body = UserList),
        (status = 401, description = "No valid access token, or its user was removed", body = ErrorBody),
        (status = 403, description = "The caller is a member (`forbidden`)", body = ErrorBody),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<UserList>, ApiError> {
    let users = state
        .services
        .manager
        .list_users(caller.tenant.id, caller.user)
        .await?;
    Ok(Json(UserList {
        users: users.iter().map(UserView::from).collect(),
    }))
}

/// Changes a user's role. An admin manages admins and members; only an owner grants or takes
/// `owner`. The last owner keeps its role.
#[utoipa::path(patch, path = "/api/tenant/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = String, Path, description = "The user's id")),
    request_body = RoleChange,
    responses(
        (status = 200, description = "The user with its new role", body = UserView),
        (status = 400, description = "A bad `id` or `role` (`field` names it)", body = ErrorBody),
        (status = 401, description = "No valid access token, or its user was removed", body = ErrorBody),
        (status = 403, description = "The caller is a member, or the role is above its own", body = ErrorBody),
        (status = 404, description = "No such user in the caller's tenant", body = ErrorBody),
        (status = 409, description = "The last owner keeps its role (field `role`)", body = ErrorBody),
    ))]
pub(crate) async fn change_role(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    Body(body): Body<RoleChange>,
) -> Result<Json<UserView>, ApiError> {
    let user = UserId::parse_field(&id, "id")?;
    let role = required(body.role, "role")?;
    let changed = state
        .services
        .manager
        .change_role(caller.tenant.id, caller.user, user, &role)
        .await?;
    Ok(Json(UserView::from(&changed)))
}

/// Removes a user of the caller's tenant and revokes its refresh tokens. An admin removes
/// admins and members; an owner anyone but the last owner. The removed user's access tokens
/// stay valid until they expire for routes that do not read the user; the user management
/// routes and refresh refuse them at once.
#[utoipa::path(delete, path = "/api/tenant/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = String, Path, description = "The user's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "A bad `id`", body = ErrorBody),
        (status = 401, description = "No valid access token, or its user was removed", body = ErrorBody),
        (status = 403, description = "The caller is a member, or the user is above its role", body = ErrorBody),
        (status = 404, description = "No such user in the caller's tenant", body = ErrorBody),
        (status = 409, description = "The last owner stays (field `role`)", body = ErrorBody),
    ))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    let user = UserId::parse_field(&id, "id")?;
    let removed = state
        .services
        .manager
        .remove_user(caller.tenant.id, caller.user, user)
        .await?;
    sessions::end_all(&state.services, removed.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
