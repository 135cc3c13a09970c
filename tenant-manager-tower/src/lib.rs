//! # tenant-manager-tower (draft)

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
pub use tenant::{TenantLayer, TenantLayerBuilder, TenantService};
pub use response::{
    NOT_READY_RETRY_AFTER, RefusalBody, UNAVAILABLE_RETRY_AFTER, error_response, json_error,
    missing_layer, status_of,
};
