//! [`QuotaLayer`].

use std::sync::Arc;

use tenant_manager_core::{QuotaEnforcer, Result};
use tower::Layer;

use super::config::QuotaConfig;
use super::{QuotaService, QuotaState};

/// Rate-limits requests through a [`QuotaEnforcer`]: per tenant (its override or its plan's
/// rate) when the `TenantLayer` established one, per client address otherwise (login and
/// registration routes, against brute force).
///
/// Every response carries `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`
/// (seconds); a refused request gets `429` with `Retry-After` and a JSON body, and the inner
/// service is not called. One enforcer call per request: O(1) in the number of tenants, no lock
/// held across it. When the enforcer is unavailable, [`FailMode`](crate::FailMode) decides.
#[derive(Clone, Debug)]
pub struct QuotaLayer {
    state: Arc<QuotaState>,
}

impl QuotaLayer {
    /// A layer asking `enforcer`, configured by `config`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](tenant_manager_core::Error::InvalidInput) when the configuration
    /// is invalid (see [`QuotaConfig::validate`]).
    pub fn new(enforcer: Arc<dyn QuotaEnforcer>, config: QuotaConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            state: Arc::new(QuotaState { enforcer, config }),
        })
    }
}

impl<S> Layer<S> for QuotaLayer {
    type Service = QuotaService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        QuotaService::new(inner, self.state.clone())
    }
}
