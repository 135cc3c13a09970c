//! The storage quota of tenant writes: a request that writes (`POST`, `PUT`, `PATCH`) is
//! refused with `403 quota_exceeded` (field `storage_bytes`) once the tenant's measured
//! storage has reached its plan's `max_storage_bytes`. Reads go on, and so do `DELETE`s (they
//! free storage). `403`, not `409` or `429`: waiting does not help, only a smaller footprint or
//! a larger plan does (the toolkit answers a usage quota the same way).
//!
//! The usage read is the last measurement (see `services::storage`), kept in the quota
//! enforcer, so a write costs one read of it (one Redis round trip); the quota comes from the
//! tenant's override or its plan in the current plan book, so a plan change applies on the
//! next request. An enforcer that cannot be reached lets writes through (logged), as the
//! per-tenant rate limit does.
//!
//! A refusal publishes a `quota_exceeded` event (quota `storage_bytes`, the request's user as
//! actor), at most once per tenant and window.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{Method, StatusCode};
use tenant_manager::manager::TenantManager;
use tenant_manager::quota_events::QuotaExceededEvents;
use tenant_manager::tower::TenantContext;
use tenant_manager::{Actor, UsageKind};

use crate::error::ApiError;

/// Whether a request of `method` may add data.
fn writes(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH)
}

/// What the guard reads and where it reports refusals.
#[derive(Debug, Clone)]
pub(crate) struct StorageGuard {
    /// The manager whose plans and usage it reads.
    pub(crate) manager: TenantManager,
    /// Where refusals are published, throttled.
    pub(crate) events: Option<QuotaExceededEvents>,
}

/// The middleware (with `axum::middleware::from_fn_with_state`, inside the `TenantLayer`).
pub(crate) async fn guard(
    State(StorageGuard { manager, events }): State<StorageGuard>,
    request: Request,
    next: Next,
) -> Response {
    if !writes(request.method()) {
        return next.run(request).await;
    }
    let Some(context) = request.extensions().get::<TenantContext>() else {
        return next.run(request).await;
    };
    let tenant = &context.tenant;
    let max = manager.effective_quota(tenant).max_storage_bytes;
    match manager.usage(tenant.id, UsageKind::StorageBytes).await {
        Ok(used) if used >= max => {
            if let Some(events) = events {
                let actor = context
                    .user()
                    .map_or(Actor::System, |id| Actor::User { id });
                let tenant = tenant.clone();
                tokio::spawn(async move {
                    events.exceeded(&tenant, "storage_bytes", max, actor).await;
                });
            }
            ApiError::Http {
                status: StatusCode::FORBIDDEN,
                code: "quota_exceeded",
                message: format!(
                    "storage quota reached: {used} of {max} bytes used; reads and deletes still \
                 work, writes need less data or a larger plan"
                ),
                field: Some("storage_bytes"),
            }
            .into_response()
        }
        Ok(_) => next.run(request).await,
        Err(error) => {
            tracing::warn!(tenant = %tenant.id, %error, "storage quota not checked: usage unreadable");
            next.run(request).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_writes_that_add_data_are_guarded() {
        for method in [Method::POST, Method::PUT, Method::PATCH] {
            assert!(writes(&method), "{method}");
        }
        for method in [Method::GET, Method::HEAD, Method::OPTIONS, Method::DELETE] {
            assert!(!writes(&method), "{method}");
        }
    }
}
