//! Writes of a tenant moving to another database server: a request that writes (`POST`, `PUT`,
//! `PATCH`, `DELETE`) of a `Moving` tenant is refused with `503 tenant_moving` and
//! `Retry-After` (`MOVE_RETRY_AFTER_SECONDS`); reads go on from the old storage until the move
//! switches. The tenant's status comes with the request's tenant (cache, invalidated on every
//! instance when the move pauses and resumes), so the check costs nothing more.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::Method;
use tenant_manager::manager::TenantManager;
use tenant_manager::tower::TenantContext;
use tenant_manager::{Error, TenantStatus};

use crate::error::ApiError;

/// Whether a request of `method` may change data.
fn writes(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The middleware (with `axum::middleware::from_fn_with_state`, inside the `TenantLayer`).
pub(crate) async fn guard(
    State(manager): State<TenantManager>,
    request: Request,
    next: Next,
) -> Response {
    let moving = request
        .extensions()
        .get::<TenantContext>()
        .filter(|context| context.tenant.status == TenantStatus::Moving)
        .map(|context| context.tenant.id);
    match moving {
        Some(tenant) if writes(request.method()) => {
            let retry_after = manager.move_config().unwrap_or_default().retry_after;
            ApiError::from(Error::Moving {
                tenant,
                retry_after,
            })
            .into_response()
        }
        _ => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reads_pass_while_moving() {
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(writes(&method), "{method}");
        }
        for method in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert!(!writes(&method), "{method}");
        }
    }
}
