//! Why an extractor refused a request.

use axum::response::{IntoResponse, Response};
use tenant_manager_core::Error;

use crate::response::{error_response, missing_layer};

/// The rejection of the tenant extractors.
#[derive(Debug)]
#[non_exhaustive]
pub enum TenantRejection {
    /// No [`TenantContext`](crate::TenantContext) in the request: the route lacks the
    /// [`TenantLayer`](crate::TenantLayer). Answered with `500 middleware_missing`.
    MissingTenantLayer,
    /// No `Arc<dyn PoolManager<Connection = C>>` in the request extensions. Answered with
    /// `500 middleware_missing`.
    MissingPool,
    /// The pool manager refused a connection (exhausted, unavailable, tenant not active);
    /// answered through [`error_response`].
    Acquire(Error),
}

impl IntoResponse for TenantRejection {
    fn into_response(self) -> Response {
        let response = match self {
            TenantRejection::MissingTenantLayer => missing_layer(
                "no TenantContext in the request: add tenant_manager_tower::TenantLayer to this \
                 route (Router::layer or route_layer)",
            ),
            TenantRejection::MissingPool => missing_layer(
                "no pool manager in the request: add \
                 .layer(axum::Extension(pool)) with pool: Arc<dyn PoolManager<Connection = _>>",
            ),
            TenantRejection::Acquire(error) => error_response(&error),
        };
        response.map(axum::body::Body::new)
    }
}

impl std::fmt::Display for TenantRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TenantRejection::MissingTenantLayer => f.write_str("TenantLayer missing"),
            TenantRejection::MissingPool => f.write_str("pool manager extension missing"),
            TenantRejection::Acquire(error) => write!(f, "no connection: {error}"),
        }
    }
}

impl std::error::Error for TenantRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TenantRejection::Acquire(error) => Some(error),
            _ => None,
        }
    }
}
