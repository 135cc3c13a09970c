//! `AdminKeyLayer`: operator routes require `X-Admin-Key`, compared in constant time.

pub mod future;
mod layer;

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderName, Request, Response};
use tenant_manager_core::Error;
use tower::Service;

use crate::body::ResponseBody;
use crate::gate::GateFuture;
use crate::response::error_response;

use future::ResponseFuture;
pub use layer::AdminKeyLayer;

/// The header that carries the admin key.
pub const ADMIN_KEY_HEADER: HeaderName = HeaderName::from_static("x-admin-key");

/// Service of [`AdminKeyLayer`]: calls the inner service only when the admin key matches.
#[derive(Clone, Debug)]
pub struct AdminKeyService<S> {
    inner: S,
    key: Arc<layer::AdminKey>,
}

impl<S> AdminKeyService<S> {
    fn new(inner: S, key: Arc<layer::AdminKey>) -> Self {
        Self { inner, key }
    }
}

impl<S, B, ResBody> Service<Request<B>> for AdminKeyService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if self.key.accepts(request.headers()) {
            // The inner service was polled ready and is called right here, so no swap is needed.
            ResponseFuture::new(GateFuture::admitted(&mut self.inner, request, ()))
        } else {
            tracing::warn!(
                method = %request.method(),
                path = request.uri().path(),
                "admin key missing or wrong"
            );
            ResponseFuture::new(GateFuture::refused(error_response(
                &Error::unauthenticated("admin key missing or wrong"),
            )))
        }
    }
}
