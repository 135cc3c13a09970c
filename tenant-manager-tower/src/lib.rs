//! # tenant-manager-tower
//!
//! tower layers that put tenant-manager in front of an axum or hyper service, so a host adds
//! multitenancy by adding layers, not by rewriting handlers:
//!
//! | layer | job |
//! |---|---|
//! | [`MetricsLayer`] | `api_requests_total{method,route,status}` and `api_response_time_seconds{method,route}`, route templates only |
//! | [`TenantLayer`] | resolve the tenant ([`ResolveTenant`]: JWT, subdomain, header, path, closures), check its status, attach a [`TenantContext`] |
//! | [`QuotaLayer`] | rate-limit per tenant (its plan) or per client address, `RateLimit-*` headers, `429` |
//! | [`TopTenantsLayer`] | requests, errors and latency of the K busiest tenants into a [`TopTenants`](tenant_manager_core::topk::TopTenants) sketch (inside the `TenantLayer`) |
//! | [`AdminKeyLayer`] | `X-Admin-Key` for operator routes, compared in constant time |
//!
//! With feature `axum`, the `extract` module adds the extractors `TenantContext`,
//! `extract::Tenant` and `extract::TenantConn` (a pooled connection scoped to the tenant).
//!
//! Every layer keeps `Error = S::Error` and answers refusals itself with a JSON body
//! `{"error":{"code":..., "message":..., "field"?:...}}` built by [`error_response`], which the
//! host can reuse for its own errors. The hot path is O(1) in the number of tenants, holds no
//! lock across an `.await`, and does one cache lookup and one quota check per request.
//!
//! ## Usage with axum
//!
//! ```no_run
//! use std::net::SocketAddr;
//! use std::sync::Arc;
//!
//! use axum::{Router, routing::{get, post}};
//! use tenant_manager_core::auth::{JwtConfig, TokenService};
//! use tenant_manager_core::lookup::TenantLookup;
//! use tenant_manager_core::memory::{
//!     InMemoryQuotaConfig, InMemoryQuotaEnforcer, InMemoryRegistry, InMemoryTenantCache,
//! };
//! use tenant_manager_core::{PlanCatalog, QuotaPolicy, Secret};
//! use tenant_manager_tower::extract::Tenant;
//! use tenant_manager_tower::{
//!     AdminKeyLayer, JwtResolver, MetricsLayer, QuotaConfig, QuotaLayer, TenantLayer,
//! };
//!
//! async fn hello(Tenant(tenant): Tenant) -> String {
//!     format!("hello {}", tenant.name)
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let lookup = TenantLookup::new(
//!     Arc::new(InMemoryRegistry::new()),
//!     Arc::new(InMemoryTenantCache::default()),
//! );
//! let tokens = TokenService::new(JwtConfig::hs256("a-secret-of-at-least-32-bytes-long!!"))?;
//! let quota = Arc::new(InMemoryQuotaEnforcer::new(InMemoryQuotaConfig::default())?);
//!
//! let tenant_routes = Router::new()
//!     .route("/hello", get(hello))
//!     // Layers added later run first: tenant, then quota, then the handler.
//!     .layer(QuotaLayer::new(
//!         quota.clone(),
//!         QuotaConfig::default().with_plans(PlanCatalog::new(QuotaPolicy::default())),
//!     )?)
//!     .layer(
//!         TenantLayer::builder(lookup)
//!             .with_resolver(JwtResolver::new(tokens))
//!             .build()?,
//!     );
//! let public_routes = Router::new()
//!     .route("/login", post(|| async { "..." }))
//!     .layer(QuotaLayer::new(quota, QuotaConfig::default())?); // per client address
//! let admin_routes = Router::new()
//!     .route("/admin/tenants", get(|| async { "..." }))
//!     .layer(AdminKeyLayer::new(Secret::new("an-admin-key-of-at-least-32-bytes!!"))?);
//!
//! let app = tenant_routes
//!     .merge(public_routes)
//!     .merge(admin_routes)
//!     .layer(MetricsLayer::new()); // outermost: refusals are counted too
//!
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:3001").await?;
//! // ConnectInfo gives the QuotaLayer the client address of unauthenticated requests.
//! axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
//! # Ok(()) }
//! ```
//!
//! ## Order of the layers
//!
//! - `MetricsLayer` outermost counts every answer, refusals included. It reads the route from
//!   axum's `MatchedPath`, which exists when the layer is added with `Router::layer` (not
//!   around the whole router from outside). For a `tenant` label it must run inside the
//!   `TenantLayer` (see [`MetricsConfig::with_tenant_labels`]).
//! - `TenantLayer` before `QuotaLayer`, so the quota is the tenant's. Without a tenant (login,
//!   registration) the `QuotaLayer` counts the client address.
//!
//! ## Writing a resolver
//!
//! Any `Fn(&http::request::Parts) -> Result<Option<Resolution>>` is a [`ResolveTenant`]:
//!
//! ```
//! use tenant_manager_core::{CacheKey, TenantSlug};
//! use tenant_manager_tower::{Resolution, ResolvedBy, TenantLayerBuilder};
//!
//! fn with_query_resolver(builder: TenantLayerBuilder) -> TenantLayerBuilder {
//!     builder.with_resolver(|parts: &http::request::Parts| {
//!         let Some(org) = parts.uri.query().and_then(|q| q.strip_prefix("org=")) else {
//!             return Ok(None);
//!         };
//!         let slug = TenantSlug::parse_field(org, "org")?;
//!         Ok(Some(Resolution::new(CacheKey::Slug(slug), ResolvedBy::Custom)))
//!     })
//! }
//! ```
//!
//! ## Tracing
//!
//! Admitted requests run inside a `tenant` span with `tenant_id`, `tenant_slug`, `user_id` and
//! `via`; when an outer span (such as tower-http's `TraceLayer`) declares `tenant_id` and
//! `tenant_slug` as `tracing::field::Empty`, they are filled in too.

pub mod admin;
mod body;
mod context;
#[cfg(feature = "axum")]
pub mod extract;
mod gate;
pub mod metrics;
pub mod quota;
mod resolve;
mod response;
pub mod tenant;
pub mod top;

pub use admin::{ADMIN_KEY_HEADER, AdminKeyLayer, AdminKeyService};
pub use body::ResponseBody;
pub use context::{ResolvedBy, TenantContext};
pub use metrics::{
    MetricsConfig, MetricsLayer, MetricsService, REQUESTS_TOTAL, RESPONSE_TIME, RouteTemplate,
    TenantLabels, UNMATCHED_ROUTE, describe_metrics,
};
pub use quota::{
    BACKEND_ERRORS_TOTAL, ClientAddr, ClientIpSource, FailMode, QuotaConfig, QuotaLayer,
    QuotaScope, QuotaService, RATELIMIT_LIMIT, RATELIMIT_REMAINING, RATELIMIT_RESET,
    REJECTIONS_TOTAL, RatePolicy,
};
pub use resolve::{
    HeaderResolver, JwtResolver, PathResolver, Resolution, ResolveTenant, SubdomainResolver,
};
pub use response::{
    NOT_READY_RETRY_AFTER, RefusalBody, UNAVAILABLE_RETRY_AFTER, error_response, json_error,
    missing_layer, status_of,
};
pub use tenant::{TenantLayer, TenantLayerBuilder, TenantService};
pub use top::{TopTenantsLayer, TopTenantsService};
