//! The `TenantContext` and `Tenant` extractors.

use std::ops::Deref;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;

use super::TenantRejection;
use crate::context::TenantContext;

impl<S: Send + Sync> FromRequestParts<S> for TenantContext {
    type Rejection = TenantRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<TenantContext>()
            .cloned()
            .ok_or(TenantRejection::MissingTenantLayer)
    }
}

/// `Option<TenantContext>`: `None` on routes the `TenantLayer` does not cover.
impl<S: Send + Sync> OptionalFromRequestParts<S> for TenantContext {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<TenantContext>().cloned())
    }
}

/// Extracts the request's tenant record (status `Active`), set by the
/// [`TenantLayer`](crate::TenantLayer).
///
/// ```
/// use tenant_manager_tower::extract::Tenant;
/// async fn handler(Tenant(tenant): Tenant) -> String {
///     format!("hello {}", tenant.name)
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant(pub tenant_manager_core::Tenant);

impl Deref for Tenant {
    type Target = tenant_manager_core::Tenant;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = TenantRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<TenantContext>()
            .map(|context| Tenant(context.tenant.clone()))
            .ok_or(TenantRejection::MissingTenantLayer)
    }
}
