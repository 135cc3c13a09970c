//! `POST /api/auth/refresh` and `POST /api/auth/logout` (public: the refresh token is the
//! credential), `POST /api/auth/change-password` (behind the access token).

use axum::Json;
use axum::extract::State;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::caller::{Caller, required};
use super::extract::Body;
use super::views::TokenView;
use crate::error::{ApiError, ErrorBody};
use crate::services::sessions;
use crate::state::AppState;

/// The public routes.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(refresh))
        .routes(routes!(logout))
}

/// The routes behind the access token.
pub(crate) fn tenant_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(change_password))
}

/// Body of `POST /api/auth/refresh` and `POST /api/auth/logout`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefreshRequest {
    /// The refresh token of the login (or of the last refresh).
    #[serde(default)]
    refresh_token: Option<String>,
}

impl std::fmt::Debug for RefreshRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshRequest(***)")
    }
}

/// A new access token and the refresh token that replaces the one sent.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Refreshed {
    #[serde(flatten)]
    token: TokenView,
    /// Use it for the next refresh; the one sent is used up.
    refresh_token: String,
    /// The tenant of the session.
    tenant_id: uuid::Uuid,
}

impl std::fmt::Debug for Refreshed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refreshed")
            .field("token", &self.token)
            .field("tenant_id", &self.tenant_id)
            .finish_non_exhaustive()
    }
}

/// Exchanges a refresh token for a new access token and a new refresh token (rotation). A
/// refresh token sent a second time revokes its whole session: every token rotated from the
/// same login.
#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "Refreshed", body = Refreshed),
        (status = 400, description = "A missing or malformed `refresh_token`", body = ErrorBody),
        (status = 401, description = "Unknown, expired, revoked or reused token, or its user was removed", body = ErrorBody),
        (status = 403, description = "The tenant is suspended", body = ErrorBody),
        (status = 429, description = "Too many requests from this address", body = ErrorBody),
    ))]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    Body(body): Body<RefreshRequest>,
) -> Result<Json<Refreshed>, ApiError> {
    let token = required(body.refresh_token, "refresh_token")?;
    let ttl = state.config.security.refresh_token_ttl;
    let (access, refresh) = sessions::refresh(&state.services, &token, ttl).await?;
    Ok(Json(Refreshed {
        tenant_id: *access.claims.tid.as_uuid(),
        token: TokenView::from(&access),
        refresh_token: refresh.expose().to_owned(),
    }))
}

/// Ends the session of a refresh token (it and every token rotated from the same login). The
/// session's access tokens stay valid until they expire. An unknown token is not an error.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 204, description = "Logged out"),
        (status = 400, description = "A missing or malformed `refresh_token`", body = ErrorBody),
        (status = 429, description = "Too many requests from this address", body = ErrorBody),
    ))]
pub(crate) async fn logout(
    State(state): State<AppState>,
    Body(body): Body<RefreshRequest>,
) -> Result<StatusCode, ApiError> {
    let token = required(body.refresh_token, "refresh_token")?;
    sessions::end(&state.services, &token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `POST /api/auth/change-password`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordChange {
    #[serde(default)]
    current_password: Option<String>,
    /// The policy of registration.
    #[schema(min_length = 8, max_length = 128)]
    #[serde(default)]
    new_password: Option<String>,
}

impl std::fmt::Debug for PasswordChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordChange(***)")
    }
}

/// Changes the caller's password and revokes all its refresh tokens (every session of the
/// user ends; its access tokens stay valid until they expire).
#[utoipa::path(post, path = "/api/auth/change-password", tag = "auth", security(("bearer" = [])),
    request_body = PasswordChange,
    responses(
        (status = 204, description = "Changed; log in again"),
        (status = 400, description = "A missing or wrong `current_password`, or a `new_password` the policy refuses", body = ErrorBody),
        (status = 401, description = "No valid access token, or its user was removed", body = ErrorBody),
        (status = 409, description = "The password changed meanwhile", body = ErrorBody),
    ))]
pub(crate) async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    let current = required(body.current_password, "current_password")?;
    let new = required(body.new_password, "new_password")?;
    let user = state
        .services
        .manager
        .change_password(caller.tenant.id, caller.user, &current, &new)
        .await?;
    sessions::end_all(&state.services, user.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
