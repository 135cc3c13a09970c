//! `MetricsLayer`: request counts and latencies labelled by route template, never raw paths.

pub mod future;
mod labels;
mod layer;
mod names;

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response};
use tower::Service;

use crate::context::TenantContext;

use future::ResponseFuture;
pub use labels::{RouteTemplate, TenantLabels, UNMATCHED_ROUTE};
pub use layer::{MetricsConfig, MetricsLayer};
pub use names::{REQUESTS_TOTAL, RESPONSE_TIME, describe_metrics};

/// Service of [`MetricsLayer`].
#[derive(Clone, Debug)]
pub struct MetricsService<S> {
    inner: S,
    config: Arc<MetricsConfig>,
}

impl<S> MetricsService<S> {
    fn new(inner: S, config: Arc<MetricsConfig>) -> Self {
        Self { inner, config }
    }
}

impl<S, B, ResBody> Service<Request<B>> for MetricsService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let recording = future::Recording {
            start: Instant::now(),
            method: labels::method_label(request.method()),
            route: labels::route_label(request.extensions()),
            tenant: self
                .config
                .tenant_labels
                .as_ref()
                .map(|labels| labels.value(request.extensions().get::<TenantContext>())),
        };
        ResponseFuture::new(self.inner.call(request), recording)
    }
}
