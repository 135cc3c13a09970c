//! `POST /api/auth/register-organization` and `POST /api/auth/login`.

use axum::Json;
use axum::extract::State;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use tenant_manager::manager::{self, LoginOutcome, Registration};
use tenant_manager::{Isolation, Secret, TenantStatus};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::Body;
use super::views::{TenantSummary, TokenView, UserView};
use crate::error::{ApiError, ErrorBody};
use crate::services::sessions;
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register_organization))
        .routes(routes!(login))
}

/// Body of `POST /api/auth/register-organization`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterRequest {
    /// Display name of the organisation.
    #[schema(example = "Acme Corp", min_length = 1, max_length = 200)]
    pub(crate) organization_name: String,
    /// The owner's e-mail (unique).
    #[schema(example = "owner@acme.example.com", format = "email")]
    pub(crate) admin_email: String,
    /// The owner's password: 8 to 128 characters mixing 3 of lower, upper, digit, symbol
    /// (or 16 characters of anything).
    #[schema(example = "Acme-Owner-2024!", min_length = 8, max_length = 128)]
    pub(crate) admin_password: String,
    /// Slug (3 to 48 of `[a-z0-9_]`, starting with a letter); derived from the name if absent.
    #[serde(default)]
    #[schema(example = "acme", pattern = "^[a-z][a-z0-9_]{2,47}$")]
    pub(crate) slug: Option<String>,
    /// `database`, `schema` or `shared`; the server's default if absent.
    #[serde(default)]
    #[schema(example = "schema")]
    pub(crate) isolation: Option<String>,
}

/// What registration created, with an access token for the owner.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Registered {
    tenant: TenantSummary,
    user: UserView,
    #[serde(flatten)]
    token: TokenView,
}

/// Registers an organisation: a tenant and its owner. `201` when the tenant is ready,
/// `202` (status `provisioning`) when provisioning runs in the background.
///
/// `isolation` is limited to the operator's self-service modes (`SELF_SERVICE_ISOLATION`,
/// by default `schema` and `shared`); the admin API creates any. When provisioning fails the
/// answer is `503 provisioning_failed` with the tenant id and `Retry-After`: sending the same
/// registration again (same e-mail and password) provisions that tenant again; a registration
/// of that e-mail and password asking for another slug or isolation replaces it.
#[utoipa::path(post, path = "/api/auth/register-organization", tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered; the tenant is active", body = Registered),
        (status = 202, description = "Registered; the tenant is being provisioned", body = Registered),
        (status = 400, description = "A field is invalid (`field` names it)", body = ErrorBody),
        (status = 403, description = "This isolation is not open to self-service (`isolation_not_allowed`, field `isolation`)", body = ErrorBody),
        (status = 409, description = "The e-mail or slug is taken", body = ErrorBody),
        (status = 429, description = "Too many requests from this address", body = ErrorBody),
        (status = 503, description = "Provisioning failed (`provisioning_failed`, `tenant_id`, `Retry-After`): send the same registration again", body = ErrorBody),
    ))]
pub(crate) async fn register_organization(
    State(state): State<AppState>,
    Body(request): Body<RegisterRequest>,
) -> Result<(StatusCode, Json<Registered>), ApiError> {
    let isolation = self_service_isolation(&state, request.isolation.as_deref())?;
    let registration = Registration::from(request).with_isolation(isolation.as_str());
    register(&state, registration).await
}

/// The isolation an anonymous registration gets: the one asked for if the operator opened it
/// to self-service, else a `403 isolation_not_allowed`; when none is asked, the server's
/// default if open, else the first self-service mode.
fn self_service_isolation(state: &AppState, asked: Option<&str>) -> Result<Isolation, ApiError> {
    let allowed = &state.config.self_service;
    let Some(asked) = asked else {
        let default = state.services.manager.config().default_isolation;
        return Ok(if allowed.allows(default) {
            default
        } else {
            allowed.isolations.first().copied().unwrap_or(default)
        });
    };
    let isolation = asked.parse::<Isolation>()?;
    if allowed.allows(isolation) {
        return Ok(isolation);
    }
    let open: Vec<&str> = allowed.isolations.iter().map(|i| i.as_str()).collect();
    Err(ApiError::Http {
        status: StatusCode::FORBIDDEN,
        code: "isolation_not_allowed",
        message: format!(
            "{isolation} isolation is not open to self-service registration; use {}",
            open.join(" or ")
        ),
        field: Some("isolation"),
    })
}

/// The fields are core's [`Registration`] (which validates every one of them), less `plan`:
/// an anonymous caller does not choose its plan.
impl From<RegisterRequest> for Registration {
    fn from(request: RegisterRequest) -> Self {
        let RegisterRequest {
            organization_name,
            admin_email,
            admin_password,
            slug,
            isolation,
        } = request;
        let mut registration =
            Registration::new(organization_name, admin_email, Secret::new(admin_password));
        registration.slug = slug;
        registration.isolation = isolation;
        registration
    }
}

impl From<&manager::Registered> for Registered {
    fn from(registered: &manager::Registered) -> Self {
        Self {
            tenant: TenantSummary::from(&registered.tenant),
            user: UserView::from(&registered.user),
            token: TokenView::from(&registered.token),
        }
    }
}

/// Registers and answers `201` (active), `202` (provisioning queued) or `503
/// provisioning_failed` (failed: the same registration again retries it).
pub(crate) async fn register(
    state: &AppState,
    registration: Registration,
) -> Result<(StatusCode, Json<Registered>), ApiError> {
    let registered = state
        .services
        .manager
        .register_organization(registration)
        .await?;
    let status = match registered.tenant.status {
        TenantStatus::Active => StatusCode::CREATED,
        TenantStatus::Pending | TenantStatus::Provisioning => StatusCode::ACCEPTED,
        _ => {
            return Err(ApiError::ProvisioningFailed {
                tenant_id: *registered.tenant.id.as_uuid(),
            });
        }
    };
    Ok((status, Json(Registered::from(&registered))))
}

/// Body of `POST /api/auth/login`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginRequest {
    email: String,
    password: String,
    /// The slug of the tenant to log in to, when the e-mail belongs to several.
    #[serde(default)]
    #[schema(example = "acme")]
    tenant: Option<String>,
}

/// An access token for one tenant, and a refresh token.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct LoggedIn {
    #[serde(flatten)]
    token: TokenView,
    /// The user's tenant.
    tenant_id: uuid::Uuid,
    /// Exchange it at `POST /api/auth/refresh` for a new access token (each use rotates it).
    refresh_token: String,
}

impl std::fmt::Debug for LoggedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoggedIn")
            .field("token", &self.token)
            .field("tenant_id", &self.tenant_id)
            .finish_non_exhaustive()
    }
}

/// A tenant to log in to.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct TenantOption {
    tenant_id: uuid::Uuid,
    /// Send it back as `tenant`.
    slug: String,
    name: String,
}

/// The e-mail and password are good for several tenants: log in again with one's `slug` as
/// `tenant`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ChooseTenant {
    /// Oldest membership first.
    choose_tenant: Vec<TenantOption>,
}

/// What a login answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(crate) enum LoginAnswer {
    /// Logged in to one tenant.
    LoggedIn(LoggedIn),
    /// Several tenants to choose from.
    ChooseTenant(ChooseTenant),
}

/// Logs a user in to one tenant. With `tenant` (a slug) to that one; without, to the only
/// tenant the e-mail and password are good for, or, when they are good for several, the
/// answer lists them (`choose_tenant`) and no token is issued. Any bad credential, an unknown
/// tenant included, answers `401` with the same message; the list is given only after the
/// password matched.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in, or the tenants to choose from", body = LoginAnswer),
        (status = 400, description = "The e-mail or tenant slug is malformed or the password empty", body = ErrorBody),
        (status = 401, description = "Wrong e-mail or password", body = ErrorBody),
        (status = 403, description = "The tenant is suspended", body = ErrorBody),
        (status = 409, description = "The tenant is not ready yet", body = ErrorBody),
        (status = 429, description = "Too many requests from this address", body = ErrorBody),
    ))]
pub(crate) async fn login(
    State(state): State<AppState>,
    Body(request): Body<LoginRequest>,
) -> Result<Json<LoginAnswer>, ApiError> {
    let outcome = state
        .services
        .manager
        .login_to(&request.email, &request.password, request.tenant.as_deref())
        .await?;
    let result = match outcome {
        LoginOutcome::LoggedIn(result) => result,
        LoginOutcome::ChooseTenant(choices) => {
            return Ok(Json(LoginAnswer::ChooseTenant(ChooseTenant {
                choose_tenant: choices
                    .into_iter()
                    .map(|c| TenantOption {
                        tenant_id: *c.tenant_id.as_uuid(),
                        slug: c.slug.to_string(),
                        name: c.name,
                    })
                    .collect(),
            })));
        }
    };
    let ttl = state.config.security.refresh_token_ttl;
    let refresh = sessions::start(&state.services, &result.user, ttl).await?;
    Ok(Json(LoginAnswer::LoggedIn(LoggedIn {
        token: TokenView::from(&result.token),
        tenant_id: *result.tenant_id.as_uuid(),
        refresh_token: refresh.expose().to_owned(),
    })))
}
