//! Response future of [`MetricsService`](super::MetricsService): records when the head is ready.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use http::Response;
use metrics::SharedString;
use pin_project_lite::pin_project;

use super::names::{REQUESTS_TOTAL, RESPONSE_TIME};

/// The labels of one request, recorded when its response is ready.
pub(super) struct Recording {
    pub(super) start: Instant,
    pub(super) method: &'static str,
    pub(super) route: SharedString,
    pub(super) tenant: Option<SharedString>,
}

impl Recording {
    fn record(self, status: SharedString) {
        let elapsed = self.start.elapsed().as_secs_f64();
        let mut labels = Vec::with_capacity(4);
        labels.push(metrics::Label::new("method", self.method));
        labels.push(metrics::Label::new("route", self.route));
        if let Some(tenant) = self.tenant {
            labels.push(metrics::Label::new("tenant", tenant));
        }
        ::metrics::histogram!(RESPONSE_TIME, labels.clone()).record(elapsed);
        labels.push(metrics::Label::new("status", status));
        ::metrics::counter!(REQUESTS_TOTAL, labels).increment(1);
    }
}

pin_project! {
    /// Response future of [`MetricsService`](super::MetricsService).
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        recording: Option<Recording>,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: F, recording: Recording) -> Self {
        Self {
            inner,
            recording: Some(recording),
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        if let Some(recording) = this.recording.take() {
            let status = match &result {
                Ok(response) => super::labels::status_label(response.status()),
                Err(_) => SharedString::const_str("error"),
            };
            recording.record(status);
        }
        Poll::Ready(result)
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
