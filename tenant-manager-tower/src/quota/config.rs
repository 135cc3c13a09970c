//! [`QuotaConfig`]: whom to count, against which limit, and what to do when the enforcer fails.

use std::fmt;
use std::sync::Arc;

use http::HeaderName;
use tenant_manager_core::quota_events::QuotaExceededEvents;
use tenant_manager_core::{Error, PlanBook, PlanCatalog, QuotaPolicy, RateLimit, Result, Tenant};

/// The request rate of a tenant: its own override or its plan's.
///
/// # Contract
/// - Pure and fast: it runs on every request, without I/O.
/// - Returns a valid [`RateLimit`] (limit and window at least 1).
///
/// # Errors
/// None; an invalid rate is refused by the enforcer and the request answered with `500`.
pub trait RatePolicy: Send + Sync + 'static {
    /// The request rate that applies to `tenant`.
    fn rate_for(&self, tenant: &Tenant) -> RateLimit;
}

/// The tenant's quota override when it has one, else its plan's policy.
impl RatePolicy for PlanCatalog {
    fn rate_for(&self, tenant: &Tenant) -> RateLimit {
        tenant
            .quota
            .as_ref()
            .map_or_else(|| self.policy(&tenant.plan).rate, |quota| quota.rate)
    }
}

/// The tenant's quota override when it has one, else its plan's policy in the book's current
/// catalog: a replaced catalog applies from the next request on.
impl RatePolicy for PlanBook {
    fn rate_for(&self, tenant: &Tenant) -> RateLimit {
        match &tenant.quota {
            Some(quota) => quota.rate,
            None => self.current().policy(&tenant.plan).rate,
        }
    }
}

impl<F> RatePolicy for F
where
    F: Fn(&Tenant) -> RateLimit + Send + Sync + 'static,
{
    fn rate_for(&self, tenant: &Tenant) -> RateLimit {
        self(tenant)
    }
}

/// Whom the [`QuotaLayer`](crate::QuotaLayer) counts a request against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuotaScope {
    /// The request's tenant when the `TenantLayer` established one, else the client address.
    #[default]
    TenantOrClient,
    /// The request's tenant; without a `TenantLayer` in front the request is answered with `500`.
    Tenant,
    /// The client address, even when a tenant is known (login, registration, password reset).
    Client,
}

/// Where the client address of a request comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientIpSource {
    /// The peer address of the connection: a [`ClientAddr`](crate::ClientAddr) extension, or
    /// with feature `axum` `ConnectInfo<SocketAddr>` (serve with
    /// `into_make_service_with_connect_info::<SocketAddr>()`).
    #[default]
    Peer,
    /// A header written by trusted reverse proxies, falling back to the peer address when absent.
    ///
    /// Only enable this behind proxies that overwrite or append to the header, or clients
    /// choose their own rate-limit key.
    Header {
        /// The header, such as `X-Forwarded-For` or `X-Real-IP`.
        name: HeaderName,
        /// Which entry, counted from the right: 1 is the address the nearest proxy saw.
        trusted_hops: usize,
    },
}

impl ClientIpSource {
    /// Most trusted proxy hops.
    pub const MAX_HOPS: usize = 16;

    /// `X-Forwarded-For`, behind `trusted_hops` proxies that append to it.
    pub fn forwarded_for(trusted_hops: usize) -> Self {
        ClientIpSource::Header {
            name: HeaderName::from_static("x-forwarded-for"),
            trusted_hops,
        }
    }

    fn validate(&self) -> Result<()> {
        match self {
            ClientIpSource::Header { trusted_hops, .. }
                if *trusted_hops == 0 || *trusted_hops > Self::MAX_HOPS =>
            {
                Err(Error::invalid("trusted_hops", "must be 1 to 16"))
            }
            _ => Ok(()),
        }
    }
}

/// What happens to requests when the enforcer is unavailable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailMode {
    /// Admit them (without `RateLimit-*` headers), logging a warning and counting
    /// `quota_backend_errors_total`: an outage of the rate limiter does not take the API down.
    #[default]
    Open,
    /// Refuse them with `503`: for routes where the limit is a security control (login).
    Closed,
}

/// Configuration of a [`QuotaLayer`](crate::QuotaLayer).
#[derive(Clone)]
#[non_exhaustive]
pub struct QuotaConfig {
    /// Whom requests are counted against.
    pub scope: QuotaScope,
    /// The rate of each tenant (default: a [`PlanCatalog`] with the default policy).
    pub rates: Arc<dyn RatePolicy>,
    /// The rate of each client address on requests without a tenant (an IPv6 client counts as
    /// its /64 network; IPv4-mapped IPv6 as the IPv4 address).
    pub client_limit: RateLimit,
    /// Where the client address comes from.
    pub client_ip: ClientIpSource,
    /// What happens when the enforcer is unavailable.
    pub fail_mode: FailMode,
    /// Where a tenant's refused request is published as a `quota_exceeded` event (quota
    /// `requests`, throttled to one per tenant and window), if anywhere.
    pub exceeded_events: Option<QuotaExceededEvents>,
}

impl Default for QuotaConfig {
    /// Tenant or client scope, the default plan policy, 100 requests per 15 minutes per client
    /// address (the seed's defaults), peer addresses, fail open.
    fn default() -> Self {
        Self {
            scope: QuotaScope::default(),
            rates: Arc::new(PlanCatalog::default()),
            client_limit: QuotaPolicy::default().rate,
            client_ip: ClientIpSource::default(),
            fail_mode: FailMode::default(),
            exceeded_events: None,
        }
    }
}

impl QuotaConfig {
    /// Sets whom requests are counted against.
    #[must_use]
    pub fn with_scope(mut self, scope: QuotaScope) -> Self {
        self.scope = scope;
        self
    }

    /// Tenants get their quota override, else their plan's rate from `plans`.
    #[must_use]
    pub fn with_plans(mut self, plans: PlanCatalog) -> Self {
        self.rates = Arc::new(plans);
        self
    }

    /// Tenants get their quota override, else their plan's rate from the book's current
    /// catalog (a replaced catalog applies from the next request on).
    #[must_use]
    pub fn with_plan_book(mut self, plans: PlanBook) -> Self {
        self.rates = Arc::new(plans);
        self
    }

    /// Tenants get the rate `policy` computes (a [`RatePolicy`] or a closure).
    #[must_use]
    pub fn with_rate_policy(mut self, policy: impl RatePolicy) -> Self {
        self.rates = Arc::new(policy);
        self
    }

    /// Sets the rate of each client address.
    #[must_use]
    pub fn with_client_limit(mut self, limit: RateLimit) -> Self {
        self.client_limit = limit;
        self
    }

    /// Sets where the client address comes from.
    #[must_use]
    pub fn with_client_ip(mut self, source: ClientIpSource) -> Self {
        self.client_ip = source;
        self
    }

    /// Sets what happens when the enforcer is unavailable.
    #[must_use]
    pub fn with_fail_mode(mut self, mode: FailMode) -> Self {
        self.fail_mode = mode;
        self
    }

    /// Publishes a `quota_exceeded` event (quota `requests`, the request's user as actor when
    /// a token named one) when a tenant's request is refused, at most once per tenant and
    /// window of `events`. The event is published off the request path: the `429` does not
    /// wait for it.
    #[must_use]
    pub fn with_exceeded_events(mut self, events: QuotaExceededEvents) -> Self {
        self.exceeded_events = Some(events);
        self
    }

    /// Checks the client limit and the proxy hops.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the first bad field.
    pub fn validate(&self) -> Result<()> {
        self.client_limit.validate()?;
        self.client_ip.validate()
    }
}

impl fmt::Debug for QuotaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuotaConfig")
            .field("scope", &self.scope)
            .field("client_limit", &self.client_limit)
            .field("client_ip", &self.client_ip)
            .field("fail_mode", &self.fail_mode)
            .field("exceeded_events", &self.exceeded_events)
            .finish_non_exhaustive()
    }
}
