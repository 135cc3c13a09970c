//! [`TenantLayer`] and its builder.

use std::fmt;
use std::sync::Arc;

use tenant_manager_core::lookup::TenantLookup;
use tenant_manager_core::{Error, Result};
use tower::Layer;

use super::TenantService;
use crate::resolve::ResolveTenant;

/// Resolves the tenant of every request, checks its status and puts a
/// [`TenantContext`](crate::TenantContext) into the request extensions and the tracing span.
///
/// Resolvers run in the order they were added; the first that finds a tenant names it, and
/// every other that finds one must name the same tenant, or the request is refused with `403`
/// (a token for tenant A with a header, subdomain or path naming tenant B: the caller is
/// authenticated, but not for the tenant it asks for). Cross-checks
/// ([`with_cross_check`](TenantLayerBuilder::with_cross_check)) never name a tenant on their
/// own; when they find one, it must be the same. The tenant is then looked up once
/// through the [`TenantLookup`] (cache first) and must be `Active`:
///
/// | outcome | status |
/// |---|---|
/// | no resolver finds a tenant, a token does not verify, unknown or deleted tenant | 401 |
/// | suspended tenant, resolvers naming different tenants | 403 |
/// | pending or provisioning tenant | 409 with `Retry-After` |
/// | failed tenant | 409 |
/// | malformed tenant header or path segment | 400 |
/// | registry unavailable | 503 |
///
/// Refusals carry a JSON body and the inner service is not called.
///
/// Unknown tenants are not cached, so each request naming one costs a registry query: where
/// tenants are named by unauthenticated means (subdomain, header, path), put a per-client
/// [`QuotaLayer`](crate::QuotaLayer) in front of this layer.
#[derive(Clone, Debug)]
pub struct TenantLayer {
    state: Arc<TenantState>,
}

impl TenantLayer {
    /// Starts a layer that looks tenants up through `lookup`.
    pub fn builder(lookup: TenantLookup) -> TenantLayerBuilder {
        TenantLayerBuilder {
            lookup,
            resolvers: Vec::new(),
            checks: Vec::new(),
        }
    }
}

impl<S> Layer<S> for TenantLayer {
    type Service = TenantService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TenantService::new(inner, self.state.clone())
    }
}

/// Builds a [`TenantLayer`]: add resolvers in order of precedence, then [`build`](Self::build).
pub struct TenantLayerBuilder {
    lookup: TenantLookup,
    resolvers: Vec<Box<dyn ResolveTenant>>,
    checks: Vec<Box<dyn ResolveTenant>>,
}

impl TenantLayerBuilder {
    /// Most resolvers and cross-checks a layer may run, together.
    pub const MAX_RESOLVERS: usize = 8;

    /// Adds a resolver after the ones already added.
    #[must_use]
    pub fn with_resolver(mut self, resolver: impl ResolveTenant) -> Self {
        self.resolvers.push(Box::new(resolver));
        self
    }

    /// Adds a cross-check: a resolver that never names the tenant on its own, but whose
    /// finding, when the request carries one, must name the tenant the resolvers found. For
    /// example a `X-Tenant-Id` header next to a token: without a token the header admits
    /// nothing; with one, a header naming another tenant is refused with `403`.
    #[must_use]
    pub fn with_cross_check(mut self, check: impl ResolveTenant) -> Self {
        self.checks.push(Box::new(check));
        self
    }

    /// The layer.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on field `resolvers` without any resolver, or with more than
    /// [`MAX_RESOLVERS`](Self::MAX_RESOLVERS) resolvers and cross-checks.
    pub fn build(self) -> Result<TenantLayer> {
        let total = self.resolvers.len() + self.checks.len();
        if self.resolvers.is_empty() || total > Self::MAX_RESOLVERS {
            return Err(Error::invalid(
                "resolvers",
                "must be 1 to 8 resolvers and cross-checks, with at least one resolver",
            ));
        }
        Ok(TenantLayer {
            state: Arc::new(TenantState {
                lookup: self.lookup,
                resolvers: self.resolvers,
                checks: self.checks,
            }),
        })
    }
}

impl fmt::Debug for TenantLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantLayerBuilder")
            .field("resolvers", &self.resolvers.len())
            .field("cross_checks", &self.checks.len())
            .finish_non_exhaustive()
    }
}

/// Shared state of a [`TenantLayer`] and its services.
pub(super) struct TenantState {
    pub(super) lookup: TenantLookup,
    pub(super) resolvers: Vec<Box<dyn ResolveTenant>>,
    pub(super) checks: Vec<Box<dyn ResolveTenant>>,
}

impl fmt::Debug for TenantState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantState")
            .field("lookup", &self.lookup)
            .field("resolvers", &self.resolvers.len())
            .field("cross_checks", &self.checks.len())
            .finish()
    }
}
