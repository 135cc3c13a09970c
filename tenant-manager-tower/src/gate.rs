//! The machinery the gating layers share: decide on a request (now or after an async check),
//! then either call the inner service or answer with a refusal, without boxing the inner future.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::future::BoxFuture;
use http::{HeaderMap, Request, Response};
use pin_project_lite::pin_project;
use tenant_manager_core::Error;
use tower::Service;
use tracing::Span;

use crate::body::ResponseBody;
use crate::response::{RefusalBody, error_response};

/// A refusal, already rendered as a response.
pub(crate) type Refusal = Response<RefusalBody>;

/// The outcome of an asynchronous check.
pub(crate) type Check<A> = BoxFuture<'static, Result<A, Refusal>>;

/// What a layer learnt while admitting a request, applied to the request and its response.
pub(crate) trait Admission: Send + 'static {
    /// Adjusts the admitted request (extensions) and returns the span to run the inner service in.
    fn admit<B>(&mut self, request: &mut Request<B>) -> Span;

    /// Adjusts the inner service's response headers.
    fn finish(self, headers: &mut HeaderMap);
}

impl Admission for () {
    fn admit<B>(&mut self, _request: &mut Request<B>) -> Span {
        Span::none()
    }

    fn finish(self, _headers: &mut HeaderMap) {}
}

pin_project! {
    /// Response future of a gating layer.
    pub(crate) struct GateFuture<S, B, A>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B, A>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B, A>
    where
        S: Service<Request<B>>,
    {
        Checking {
            check: Check<A>,
            // The service that was polled ready, and the request, until the check is done.
            pending: Option<(S, Request<B>)>,
        },
        Inner {
            #[pin]
            future: S::Future,
            admission: Option<A>,
            span: Span,
        },
        Refused {
            response: Option<Refusal>,
        },
    }
}

impl<S, B, A> GateFuture<S, B, A>
where
    S: Service<Request<B>>,
    A: Admission,
{
    /// Runs `check`, then calls `service` with `request`. `service` must have been polled
    /// ready: the future takes that very service and leaves a fresh clone in its place for the
    /// next request.
    pub(crate) fn checking(check: Check<A>, service: &mut S, request: Request<B>) -> Self
    where
        S: Clone,
    {
        let clone = service.clone();
        let ready = std::mem::replace(service, clone);
        Self {
            state: State::Checking {
                check,
                pending: Some((ready, request)),
            },
        }
    }

    /// The request was admitted without waiting: calls `service` now.
    pub(crate) fn admitted(service: &mut S, request: Request<B>, admission: A) -> Self {
        Self {
            state: call(service, request, admission),
        }
    }

    /// The request was refused without waiting.
    pub(crate) fn refused(response: Refusal) -> Self {
        Self {
            state: State::Refused {
                response: Some(response),
            },
        }
    }
}

/// Admits the request and calls the service inside the admission's span.
fn call<S, B, A>(service: &mut S, mut request: Request<B>, mut admission: A) -> State<S, B, A>
where
    S: Service<Request<B>>,
    A: Admission,
{
    let span = admission.admit(&mut request);
    let future = span.in_scope(|| service.call(request));
    State::Inner {
        future,
        admission: Some(admission),
        span,
    }
}

/// The answer when a future is polled again after it completed: a bug of the caller, answered
/// with a 500 rather than a panic.
fn polled_after_completion() -> Refusal {
    error_response(&Error::internal("response future polled after completion"))
}

impl<S, B, A, ResBody> Future for GateFuture<S, B, A>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    A: Admission,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Checking { check, pending } => {
                    let outcome = ready!(check.as_mut().poll(cx));
                    let next = match (outcome, pending.take()) {
                        (Ok(admission), Some((mut service, request))) => {
                            call(&mut service, request, admission)
                        }
                        (Ok(_), None) => State::Refused {
                            response: Some(polled_after_completion()),
                        },
                        (Err(refusal), _) => State::Refused {
                            response: Some(refusal),
                        },
                    };
                    this.state.set(next);
                }
                StateProj::Inner {
                    future,
                    admission,
                    span,
                } => {
                    let result = {
                        let _entered = span.enter();
                        ready!(future.poll(cx))
                    };
                    let admission = admission.take();
                    // Never poll the inner future again once it completed.
                    this.state.set(State::Refused { response: None });
                    let mut response = result?;
                    if let Some(admission) = admission {
                        admission.finish(response.headers_mut());
                    }
                    return Poll::Ready(Ok(response.map(ResponseBody::inner)));
                }
                StateProj::Refused { response } => {
                    let response = response.take().unwrap_or_else(polled_after_completion);
                    return Poll::Ready(Ok(response.map(ResponseBody::refusal)));
                }
            }
        }
    }
}

/// Declares a layer's public `ResponseFuture<S, B>`: a named wrapper around [`GateFuture`] with
/// the layer's admission type, so each middleware module exposes its own future type.
macro_rules! gate_response_future {
    ($(#[$doc:meta])* $admission:ty) => {
        pin_project_lite::pin_project! {
            $(#[$doc])*
            pub struct ResponseFuture<S, B>
            where
                S: tower::Service<http::Request<B>>,
            {
                #[pin]
                inner: $crate::gate::GateFuture<S, B, $admission>,
            }
        }

        impl<S, B> ResponseFuture<S, B>
        where
            S: tower::Service<http::Request<B>>,
        {
            pub(super) fn new(inner: $crate::gate::GateFuture<S, B, $admission>) -> Self {
                Self { inner }
            }
        }

        impl<S, B, ResBody> std::future::Future for ResponseFuture<S, B>
        where
            S: tower::Service<http::Request<B>, Response = http::Response<ResBody>>,
        {
            type Output =
                Result<http::Response<$crate::body::ResponseBody<ResBody>>, S::Error>;

            fn poll(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Self::Output> {
                self.project().inner.poll(cx)
            }
        }

        impl<S, B> std::fmt::Debug for ResponseFuture<S, B>
        where
            S: tower::Service<http::Request<B>>,
        {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct("ResponseFuture").finish_non_exhaustive()
            }
        }
    };
}

pub(crate) use gate_response_future;
