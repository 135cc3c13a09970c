//! [`MetricsLayer`] and its configuration.

use std::sync::Arc;

use tower::Layer;

use super::MetricsService;
use super::labels::TenantLabels;

/// What the [`MetricsLayer`] records besides method, route and status.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct MetricsConfig {
    /// Adds a `tenant` label with a bounded value set; off by default.
    pub tenant_labels: Option<TenantLabels>,
}

impl MetricsConfig {
    /// Adds the `tenant` label: the slug of the listed tenants, `other` for any other tenant,
    /// `none` without one. The layer must run inside the `TenantLayer` to see the tenant.
    #[must_use]
    pub fn with_tenant_labels(mut self, labels: TenantLabels) -> Self {
        self.tenant_labels = Some(labels);
        self
    }
}

/// Records `api_requests_total{method,route,status}` and
/// `api_response_time_seconds{method,route}` for every request, through the `metrics` facade.
///
/// `route` is the route template (axum's `MatchedPath` with feature `axum`, or a
/// [`RouteTemplate`](crate::RouteTemplate) extension), else `unmatched`: never the raw path.
/// The time runs from the call to the response head. Place it outermost to count the
/// refusals of the other layers as well; inside the `TenantLayer` to label by tenant.
#[derive(Debug, Clone, Default)]
pub struct MetricsLayer {
    config: Arc<MetricsConfig>,
}

impl MetricsLayer {
    /// A layer with the default configuration (no tenant label).
    pub fn new() -> Self {
        Self::default()
    }

    /// A layer with `config`.
    pub fn with_config(config: MetricsConfig) -> Self {
        Self {
            config: Arc::new(config),
        }
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService::new(inner, self.config.clone())
    }
}
