//! What every handler can reach.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;

use metrics_exporter_prometheus::PrometheusHandle;
use tenant_manager::topk::TopTenants;

use crate::config::Config;
use crate::services::Services;

/// Shared state of the routes: cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    inner: Arc<StateInner>,
}

/// The parts of [`AppState`].
#[derive(Debug)]
pub(crate) struct StateInner {
    /// The configuration the server started with.
    pub(crate) config: Arc<Config>,
    /// The adapters and what is composed from them (readiness probes included).
    pub(crate) services: Services,
    /// The Prometheus recorder, when metrics are on.
    pub(crate) metrics: Option<PrometheusHandle>,
    /// Requests, errors and latencies of the busiest tenants (`/api/admin/top-tenants`, and
    /// the `tenant_manager_top_tenant_*` series of `/metrics`).
    pub(crate) top_tenants: Arc<TopTenants>,
    /// The OpenAPI document, serialised once.
    pub(crate) openapi_json: bytes::Bytes,
    /// When the server started.
    pub(crate) started: Instant,
}

impl AppState {
    pub(crate) fn new(inner: StateInner) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }
}

impl Deref for AppState {
    type Target = StateInner;
    fn deref(&self) -> &StateInner {
        &self.inner
    }
}
