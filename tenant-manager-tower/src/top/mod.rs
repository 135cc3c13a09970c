//! `TopTenantsLayer`: records each answered request of a resolved tenant into a
//! [`TopTenants`] sketch (requests, errors, latency of the K busiest tenants).

mod future;

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response};
use tenant_manager_core::topk::TopTenants;
use tower::{Layer, Service};

use crate::context::TenantContext;

pub use future::TopTenantsFuture;

/// Records every answer to a request with a [`TenantContext`] into a shared [`TopTenants`]:
/// one request, whether it was an error (a 5xx status, or an error of the inner service), and
/// the time from the call to the response head.
///
/// Place it inside the [`TenantLayer`](crate::TenantLayer), which attaches the context;
/// requests without one pass unrecorded. The tenant is keyed by id, so the sketch's memory
/// stays bounded by its K whatever the number of tenants; exporting it is the host's job
/// (the reference server renders it at scrape time, only the K tenants it holds).
#[derive(Debug, Clone)]
pub struct TopTenantsLayer {
    top: Arc<TopTenants>,
}

impl TopTenantsLayer {
    /// A layer recording into `top`.
    pub fn new(top: Arc<TopTenants>) -> Self {
        Self { top }
    }
}

impl<S> Layer<S> for TopTenantsLayer {
    type Service = TopTenantsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TopTenantsService {
            inner,
            top: self.top.clone(),
        }
    }
}

/// Service of [`TopTenantsLayer`].
#[derive(Debug, Clone)]
pub struct TopTenantsService<S> {
    inner: S,
    top: Arc<TopTenants>,
}

impl<S, B, ResBody> Service<Request<B>> for TopTenantsService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = TopTenantsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let recording =
            request
                .extensions()
                .get::<TenantContext>()
                .map(|context| future::Recording {
                    top: self.top.clone(),
                    tenant: context.tenant.id,
                    slug: context.tenant.slug.clone(),
                    start: Instant::now(),
                });
        TopTenantsFuture::new(self.inner.call(request), recording)
    }
}
