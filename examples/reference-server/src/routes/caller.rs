//! The caller of a tenant route: its tenant and user, as its access token names them (the
//! token's tenant is authoritative: no route takes a tenant from the body or the path).

use axum::extract::FromRequestParts;
use http::StatusCode;
use http::request::Parts;
use tenant_manager::tower::TenantContext;
use tenant_manager::{Error, Tenant, UserId};

use crate::error::ApiError;

/// The verified caller: the tenant and user of its access token.
#[derive(Debug)]
pub(crate) struct Caller {
    pub(crate) tenant: Tenant,
    pub(crate) user: UserId,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let context = TenantContext::from_request_parts(parts, state)
            .await
            .map_err(|_| Error::unauthenticated("an access token is required"))?;
        let user = context
            .user()
            .ok_or_else(|| Error::unauthenticated("an access token is required"))?;
        Ok(Self {
            tenant: context.tenant,
            user,
        })
    }
}

/// A required field of a request body (absent: `400 invalid_input` naming it).
pub(crate) fn required<T>(value: Option<T>, field: &'static str) -> Result<T, ApiError> {
    value.ok_or_else(|| Error::invalid(field, "is required").into())
}

/// The users quota as the API answers it: `403 quota_exceeded` naming `users`.
pub(crate) fn users_quota(error: Error) -> ApiError {
    match error {
        Error::QuotaExceeded { quota, limit, .. } if quota == "users" => ApiError::Http {
            status: StatusCode::FORBIDDEN,
            code: "quota_exceeded",
            message: format!("the plan allows {limit} users, invitations pending included"),
            field: Some("users"),
        },
        other => other.into(),
    }
}
