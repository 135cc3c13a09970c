//! Response future of [`TopTenantsService`](super::TopTenantsService): records when the head
//! is ready.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use http::Response;
use pin_project_lite::pin_project;
use tenant_manager_core::topk::TopTenants;
use tenant_manager_core::{TenantId, TenantSlug};

/// The request to record once its answer is known.
pub(super) struct Recording {
    pub(super) top: Arc<TopTenants>,
    pub(super) tenant: TenantId,
    pub(super) slug: TenantSlug,
    pub(super) start: Instant,
}

pin_project! {
    /// Response future of [`TopTenantsService`](super::TopTenantsService).
    pub struct TopTenantsFuture<F> {
        #[pin]
        inner: F,
        recording: Option<Recording>,
    }
}

impl<F> TopTenantsFuture<F> {
    pub(super) fn new(inner: F, recording: Option<Recording>) -> Self {
        Self { inner, recording }
    }
}

impl<F, B, E> Future for TopTenantsFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        if let Some(recording) = this.recording.take() {
            let error = match &result {
                Ok(response) => response.status().is_server_error(),
                Err(_) => true,
            };
            let now = Instant::now();
            recording.top.record(
                recording.tenant,
                &recording.slug,
                error,
                now.saturating_duration_since(recording.start),
                now,
            );
        }
        Poll::Ready(result)
    }
}

impl<F> fmt::Debug for TopTenantsFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TopTenantsFuture").finish_non_exhaustive()
    }
}
