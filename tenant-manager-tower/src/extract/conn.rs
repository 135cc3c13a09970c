//! The `TenantConn` extractor: a pooled connection scoped to the request's tenant.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use axum::extract::FromRequestParts;
use http::request::Parts;
use tenant_manager_core::{PoolManager, TenantConnection};

use super::TenantRejection;
use crate::context::TenantContext;

/// A connection scoped to the request's tenant, checked out of the pool manager for the life of
/// the handler (returned to the pool when dropped).
///
/// Needs the [`TenantLayer`](crate::TenantLayer) on the route and the pool manager in the
/// request extensions, as `Arc<dyn PoolManager<Connection = C>>`:
///
/// ```no_run
/// # use std::sync::Arc;
/// # use tenant_manager_core::PoolManager;
/// use axum::{Extension, Router, routing::get};
/// use tenant_manager_tower::extract::TenantConn;
///
/// # #[derive(Debug)] struct Conn;
/// async fn handler(mut conn: TenantConn<Conn>) { let _c: &mut Conn = &mut conn; }
///
/// # fn app(pool: Arc<dyn PoolManager<Connection = Conn>>) -> Router {
/// Router::new().route("/items", get(handler)).layer(Extension(pool))
/// # }
/// ```
///
/// Handlers that keep the pool manager in their state instead call
/// `pool.acquire(&tenant)` with the [`Tenant`](super::Tenant) extractor.
#[derive(Debug)]
pub struct TenantConn<C: 'static>(pub TenantConnection<C>);

impl<C: 'static> Deref for TenantConn<C> {
    type Target = C;

    fn deref(&self) -> &C {
        &self.0
    }
}

impl<C: 'static> DerefMut for TenantConn<C> {
    fn deref_mut(&mut self) -> &mut C {
        &mut self.0
    }
}

impl<S, C> FromRequestParts<S> for TenantConn<C>
where
    S: Send + Sync,
    C: Send + 'static,
{
    type Rejection = TenantRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let context = parts
            .extensions
            .get::<TenantContext>()
            .ok_or(TenantRejection::MissingTenantLayer)?;
        let pool = parts
            .extensions
            .get::<Arc<dyn PoolManager<Connection = C>>>()
            .ok_or(TenantRejection::MissingPool)?;
        pool.acquire(&context.tenant)
            .await
            .map(TenantConn)
            .map_err(TenantRejection::Acquire)
    }
}
