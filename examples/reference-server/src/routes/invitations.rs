//! `POST/GET /api/tenant/invitations`, `DELETE /api/tenant/invitations/{id}`: owners and admins
//! invite users to the tenant their access token names; `POST /api/auth/accept-invitation`
//! (public): the invitee sets a password and becomes a user.

use axum::Json;
use axum::extract::State;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use tenant_manager::{Invitation, InvitationId};
use time::format_description::well_known::Rfc3339;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::caller::{Caller, required, users_quota};
use super::extract::{Body, PathParams};
use super::views::UserView;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// The routes behind the access token.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(invite, list))
        .routes(routes!(revoke))
}

/// The public route.
pub(crate) fn public_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(accept))
}

/// Body of `POST /api/tenant/invitations`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct InviteRequest {
    /// Who to invite.
    #[schema(example = "new.colleague@acme.example.com", format = "email")]
    #[serde(default)]
    email: Option<String>,
    /// `owner`, `admin` or `member` (default `member`).
    #[schema(example = "member")]
    #[serde(default)]
    role: Option<String>,
}

/// A pending invitation.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct InvitationView {
    id: Uuid,
    email: String,
    role: String,
    /// The user who invited; `null` when the operator did (`tenant-cli users invite`, or a
    /// restore as a new tenant).
    invited_by: Option<Uuid>,
    /// RFC 3339.
    created_at: String,
    /// RFC 3339: not accepted after this.
    expires_at: String,
}

impl From<&Invitation> for InvitationView {
    fn from(i: &Invitation) -> Self {
        Self {
            id: *i.id.as_uuid(),
            email: i.email.to_string(),
            role: i.role.to_string(),
            invited_by: i.invited_by.map(|u| *u.as_uuid()),
            created_at: i.created_at.format(&Rfc3339).unwrap_or_default(),
            expires_at: i.expires_at.format(&Rfc3339).unwrap_or_default(),
        }
    }
}

/// A new invitation and the token that accepts it. The token is shown once: send it to the
/// invitee (only its digest is stored).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Invited {
    #[serde(flatten)]
    invitation: InvitationView,
    /// Send it to the invitee; `POST /api/auth/accept-invitation` takes it.
    token: String,
}

impl From<&tenant_manager::manager::Invited> for Invited {
    fn from(invited: &tenant_manager::manager::Invited) -> Self {
        Self {
            invitation: InvitationView::from(&invited.invitation),
            token: invited.token.expose().to_owned(),
        }
    }
}

impl std::fmt::Debug for Invited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invited")
            .field("invitation", &self.invitation)
            .field("token", &"***")
            .finish()
    }
}

/// The pending invitations of the caller's tenant.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct InvitationList {
    /// Oldest first.
    invitations: Vec<InvitationView>,
}

/// Invites someone to the caller's tenant (valid `INVITATION_TTL_SECONDS`). Owners and
/// admins; an admin invites admins and members, only an owner invites owners. The tenant's
/// users plus pending invitations must stay within its plan's `max_users`.
#[utoipa::path(post, path = "/api/tenant/invitations", tag = "users", security(("bearer" = [])),
    request_body = InviteRequest,
    responses(
        (status = 201, description = "Invited; the token is in the answer", body = Invited),
        (status = 400, description = "A bad `email` or `role` (`field` names it)", body = ErrorBody),
        (status = 401, description = "No valid access token, or its user was removed", body = ErrorBody),
        (status = 403, description = "The caller is a member or the role is above its own (`forbidden`), or the users quota is spent (`quota_exceeded`, field `users`)", body = ErrorBody),
        (status = 409, description = "A user or a pending invitation has this e-mail (field `email`)", body = ErrorBody),
    ))]
pub(crate) async fn invite(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<InviteRequest>,
) -> Result<(StatusCode, Json<Invited>), ApiError> {
    let email = required(body.email, "email")?;
    let role = body.role.unwrap_or_else(|| "member".to_owned());
    let invited = state
        .services
        .manager
        .invite_user(
            &caller.tenant,
            caller.user,
            &email,
            &role,
            state.config.security.invitation_ttl,
        )
        .await
        .map_err(users_quota)?;
    Ok((StatusCode::CREATED, Json(Invited::from(&invited))))
}

/// The pending invitations of the caller's tenant. Owners and admins.
#[utoipa::path(get, path = "/api/tenant/invitations", tag = "users", security(("bearer" = [])),
    responses(
        (status = 200, description = "Pending invitations", body = InvitationList),
        (status = 401, description = "No valid access token, or its user was removed", body = ErrorBody),
        (status = 403, description = "The caller is a member", body = ErrorBody),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<InvitationList>, ApiError> {
    let invitations = state
        .services
        .manager
        .list_invitations(caller.tenant.id, caller.user)
        .await?;
    Ok(Json(InvitationList {
        invitations: invitations.iter().map(InvitationView::from).collect(),
    }))
}

/// Revokes a pending invitation of the caller's tenant. Owners and admins.
#[utoipa::path(delete, path = "/api/tenant/invitations/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = String, Path, description = "The invitation's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 400, description = "A bad `id`", body = ErrorBody),
        (status = 401, description = "No valid access token, or its user was removed", body = ErrorBody),
        (status = 403, description = "The caller is a member", body = ErrorBody),
        (status = 404, description = "No pending invitation with this id in the caller's tenant", body = ErrorBody),
    ))]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    let id = InvitationId::parse_field(&id, "id")?;
    state
        .services
        .manager
        .revoke_invitation(caller.tenant.id, caller.user, id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `POST /api/auth/accept-invitation`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AcceptRequest {
    /// The invitation's token.
    #[serde(default)]
    token: Option<String>,
    /// The new user's password (the policy of registration).
    #[schema(min_length = 8, max_length = 128)]
    #[serde(default)]
    password: Option<String>,
}

/// The user an accepted invitation created, and its tenant.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Accepted {
    user: UserView,
    tenant_id: Uuid,
}

/// Accepts an invitation: creates the user with this password. The user then logs in. An
/// unknown, wrong, expired, revoked or used token gets the same `404`.
#[utoipa::path(post, path = "/api/auth/accept-invitation", tag = "auth",
    request_body = AcceptRequest,
    responses(
        (status = 201, description = "The user exists", body = Accepted),
        (status = 400, description = "A malformed `token`, or a `password` the policy refuses", body = ErrorBody),
        (status = 404, description = "No usable invitation (`invitation_not_found`)", body = ErrorBody),
        (status = 409, description = "The tenant has a user with this e-mail by now", body = ErrorBody),
        (status = 429, description = "Too many requests from this address", body = ErrorBody),
    ))]
pub(crate) async fn accept(
    State(state): State<AppState>,
    Body(body): Body<AcceptRequest>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let token = required(body.token, "token")?;
    let password = required(body.password, "password")?;
    let user = state
        .services
        .manager
        .accept_invitation(&token, &password)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Accepted {
            user: UserView::from(&user),
            tenant_id: *user.tenant_id.as_uuid(),
        }),
    ))
}
