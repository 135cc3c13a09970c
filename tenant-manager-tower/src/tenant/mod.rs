//! `TenantLayer`: resolve the tenant of a request, check its status, attach its context.

mod admit;
pub mod future;
mod layer;

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::Service;

use crate::body::ResponseBody;
use crate::gate::GateFuture;
use crate::response::error_response;

use future::ResponseFuture;
pub use layer::{TenantLayer, TenantLayerBuilder};

/// Service of [`TenantLayer`].
#[derive(Clone, Debug)]
pub struct TenantService<S> {
    inner: S,
    state: Arc<layer::TenantState>,
}

impl<S> TenantService<S> {
    fn new(inner: S, state: Arc<layer::TenantState>) -> Self {
        Self { inner, state }
    }
}

impl<S, B, ResBody> Service<Request<B>> for TenantService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (parts, body) = request.into_parts();
        let resolutions =
            match admit::resolve_all(&self.state.resolvers, &self.state.checks, &parts) {
                Ok(resolutions) => resolutions,
                Err(error) => {
                    return ResponseFuture::new(GateFuture::refused(error_response(&error)));
                }
            };
        let request = Request::from_parts(parts, body);
        let state = self.state.clone();
        let check = Box::pin(async move {
            admit::admit(&state.lookup, resolutions)
                .await
                .map_err(|error| error_response(&error))
        });
        ResponseFuture::new(GateFuture::checking(check, &mut self.inner, request))
    }
}
