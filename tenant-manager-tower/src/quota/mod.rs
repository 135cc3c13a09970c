//! `QuotaLayer`: per-tenant and per-client rate limits with `RateLimit-*` headers.

mod admission;
mod client;
mod config;
pub mod future;
mod headers;
mod layer;

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use tenant_manager_core::{Actor, Error, QuotaEnforcer, RateKey, RateLimit};
use tower::Service;

use crate::body::ResponseBody;
use crate::context::TenantContext;
use crate::gate::{GateFuture, Refusal};
use crate::response::{error_response, missing_layer};

use admission::QuotaAdmission;
pub use client::ClientAddr;
pub use config::{ClientIpSource, FailMode, QuotaConfig, QuotaScope, RatePolicy};
use future::ResponseFuture;
pub use headers::{RATELIMIT_LIMIT, RATELIMIT_REMAINING, RATELIMIT_RESET};
pub use layer::QuotaLayer;

/// Counter of requests refused by a rate limit, labelled `scope` (`tenant` or `client`).
pub const REJECTIONS_TOTAL: &str = "quota_rejections_total";

/// Counter of enforcer failures, labelled `scope` and `outcome` (`admitted` or `refused`).
pub const BACKEND_ERRORS_TOTAL: &str = "quota_backend_errors_total";

/// Shared state of a [`QuotaLayer`] and its services.
#[derive(Debug)]
struct QuotaState {
    enforcer: Arc<dyn QuotaEnforcer>,
    config: QuotaConfig,
}

/// Whom one request is counted against.
struct Subject {
    key: RateKey,
    limit: RateLimit,
    scope: &'static str,
    /// The tenant's context, kept only when refusals are published as events.
    context: Option<TenantContext>,
}

impl QuotaState {
    /// The key and limit of a request, or what to add when neither tenant nor client is known.
    fn subject<B>(&self, request: &Request<B>) -> Result<Subject, &'static str> {
        let tenant = request.extensions().get::<TenantContext>();
        match (self.config.scope, tenant) {
            (QuotaScope::TenantOrClient | QuotaScope::Tenant, Some(context)) => Ok(Subject {
                key: RateKey::tenant(context.tenant.id),
                limit: self.config.rates.rate_for(&context.tenant),
                scope: "tenant",
                context: self
                    .config
                    .exceeded_events
                    .as_ref()
                    .map(|_| context.clone()),
            }),
            (QuotaScope::Tenant, None) => Err(
                "QuotaLayer with QuotaScope::Tenant found no TenantContext: \
                 add tenant_manager_tower::TenantLayer in front of it",
            ),
            _ => match client::client_ip(request, &self.config.client_ip) {
                Some(ip) => Ok(Subject {
                    key: RateKey::client(client::rate_bucket(ip)),
                    limit: self.config.client_limit,
                    scope: "client",
                    context: None,
                }),
                None => Err("QuotaLayer found no client address: serve with \
                     into_make_service_with_connect_info::<SocketAddr>(), insert \
                     tenant_manager_tower::ClientAddr, or trust a proxy header with \
                     ClientIpSource::Header"),
            },
        }
    }

    /// Asks the enforcer about one request.
    async fn check(&self, subject: Subject) -> Result<QuotaAdmission, Refusal> {
        match self
            .enforcer
            .check_rate(&subject.key, &subject.limit, 1)
            .await
        {
            Ok(decision) if decision.allowed => Ok(QuotaAdmission(Some(decision))),
            Ok(decision) => {
                ::metrics::counter!(REJECTIONS_TOTAL, "scope" => subject.scope).increment(1);
                if let (Some(events), Some(context)) =
                    (self.config.exceeded_events.clone(), subject.context)
                {
                    let actor = context
                        .user()
                        .map_or(Actor::System, |id| Actor::User { id });
                    let limit = decision.limit;
                    tokio::spawn(async move {
                        events
                            .exceeded(&context.tenant, "requests", limit, actor)
                            .await;
                    });
                }
                let mut refusal = error_response(&Error::QuotaExceeded {
                    quota: "requests".into(),
                    limit: decision.limit,
                    retry_after: decision
                        .retry_after
                        .unwrap_or(decision.reset_after)
                        .max(Duration::from_secs(1)),
                });
                headers::apply(&decision, refusal.headers_mut());
                Err(refusal)
            }
            Err(error @ Error::Unavailable { .. }) => {
                let admit = self.config.fail_mode == FailMode::Open;
                let outcome = if admit { "admitted" } else { "refused" };
                ::metrics::counter!(BACKEND_ERRORS_TOTAL, "scope" => subject.scope, "outcome" => outcome)
                    .increment(1);
                if admit {
                    tracing::warn!(%error, "rate limit check failed; admitting (fail open)");
                    Ok(QuotaAdmission(None))
                } else {
                    // Logged by error_response.
                    Err(error_response(&error))
                }
            }
            Err(error) => Err(error_response(&Error::internal_with(
                "rate limit check failed",
                error,
            ))),
        }
    }
}

/// Service of [`QuotaLayer`].
#[derive(Clone, Debug)]
pub struct QuotaService<S> {
    inner: S,
    state: Arc<QuotaState>,
}

impl<S> QuotaService<S> {
    fn new(inner: S, state: Arc<QuotaState>) -> Self {
        Self { inner, state }
    }
}

impl<S, B, ResBody> Service<Request<B>> for QuotaService<S>
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
        let subject = match self.state.subject(&request) {
            Ok(subject) => subject,
            Err(missing) => {
                return ResponseFuture::new(GateFuture::refused(missing_layer(missing)));
            }
        };
        let state = self.state.clone();
        let check = Box::pin(async move { state.check(subject).await });
        ResponseFuture::new(GateFuture::checking(check, &mut self.inner, request))
    }
}
