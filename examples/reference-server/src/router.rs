//! Route layout and the HTTP middleware stack.
//!
//! Outermost first: request id -> trace span -> request id echoed on the answer -> CORS ->
//! JSON error bodies -> timeout -> body limit -> routes.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use http::header::{self, HeaderName};
use http::{HeaderValue, Method, Request, StatusCode};
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;

use std::sync::Arc;

use tenant_manager::Error;
use tenant_manager::topk::TopTenants;
use tenant_manager::tower::{
    AdminKeyLayer, ClientIpSource, FailMode, HeaderResolver, JwtResolver, MetricsLayer,
    QuotaConfig, QuotaLayer, QuotaScope, TenantLayer, TopTenantsLayer,
};

use crate::config::{AllowedOrigins, Config};
use crate::error::{ApiError, not_found};
use crate::openapi::ApiDoc;
use crate::routes;
use crate::services::Services;
use crate::state::{AppState, StateInner};

/// Header carrying the request id (taken from the client when present, else a fresh UUID).
pub(crate) const REQUEST_ID: &str = "x-request-id";

/// The routers to serve: the API, and `/metrics` alone when it has its own port.
#[derive(Debug)]
pub(crate) struct Routers {
    pub(crate) api: Router,
    pub(crate) metrics: Option<Router>,
}

/// Everything the state is made of, except the document the router assembly produces.
#[derive(Debug)]
pub(crate) struct Parts {
    pub(crate) services: Services,
    pub(crate) metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

mod move_guard;
mod storage_guard;

/// The toolkit's middleware of each route group.
struct Guards {
    tenant: TenantLayer,
    /// The manager whose plans and usage the storage quota of tenant writes reads.
    storage: storage_guard::StorageGuard,
    tenant_quota: Option<QuotaLayer>,
    client_quota: Option<QuotaLayer>,
    admin: AdminKeyLayer,
    top_tenants: TopTenantsLayer,
}

impl Guards {
    /// Resolution by access token (with `X-Tenant-Id` as a cross-check: a request naming
    /// another tenant than its token's is refused), per-tenant and per-address rate limits
    /// (with `ENABLE_RATE_LIMITING`), and the admin key.
    fn new(
        config: &Config,
        services: &Services,
        top_tenants: &Arc<TopTenants>,
    ) -> Result<Self, Error> {
        // A cross-check never names a tenant on its own: a request with `X-Tenant-Id` and no
        // token names no tenant and is refused with 401.
        let tenant = TenantLayer::builder(services.lookup.clone())
            .with_resolver(JwtResolver::new(services.manager.tokens().clone()))
            .with_cross_check(HeaderResolver::x_tenant_id())
            .build()?;
        let client_ip = match config.http.trusted_proxy_hops {
            0 => ClientIpSource::Peer,
            hops => ClientIpSource::forwarded_for(hops),
        };
        let (tenant_quota, client_quota) = if config.features.rate_limiting {
            let mut tenant_quota = QuotaConfig::default()
                .with_scope(QuotaScope::Tenant)
                .with_plan_book(services.plans.clone())
                .with_client_ip(client_ip.clone());
            if let Some(events) = &services.quota_events {
                tenant_quota = tenant_quota.with_exceeded_events(events.clone());
            }
            let client_quota = QuotaConfig::default()
                .with_scope(QuotaScope::Client)
                .with_client_limit(config.rate_limit)
                .with_client_ip(client_ip)
                .with_fail_mode(FailMode::Closed);
            (
                Some(QuotaLayer::new(services.quota.clone(), tenant_quota)?),
                Some(QuotaLayer::new(services.quota.clone(), client_quota)?),
            )
        } else {
            (None, None)
        };
        let admin = AdminKeyLayer::new(config.security.super_admin_key.clone())?;
        Ok(Self {
            tenant,
            storage: storage_guard::StorageGuard {
                manager: services.manager.clone(),
                events: services.quota_events.clone(),
            },
            tenant_quota,
            client_quota,
            admin,
            top_tenants: TopTenantsLayer::new(top_tenants.clone()),
        })
    }
}

/// The OpenAPI document and the routers of every resource, each group behind its guards.
fn assemble(
    guards: Option<Guards>,
) -> (Router<AppState>, Router<AppState>, utoipa::openapi::OpenApi) {
    let mut public = routes::auth::router()
        .merge(routes::sessions::router())
        .merge(routes::invitations::public_router());
    let mut tenant = routes::tenant::router()
        .merge(routes::companies::router())
        .merge(routes::users::router())
        .merge(routes::invitations::router())
        .merge(routes::sessions::tenant_router());
    #[cfg(feature = "attack-route")]
    {
        tenant = tenant.merge(routes::test_sql::router());
    }
    let mut admin = routes::admin::router()
        .merge(routes::migrations::router())
        .merge(routes::plans::router())
        .merge(routes::jobs::router())
        .merge(routes::top_tenants::router())
        .merge(routes::backups::router())
        .merge(routes::backup_care::router())
        .merge(routes::webhooks::router())
        .merge(routes::moves::router())
        .merge(routes::move_cancel::router());
    if let Some(guards) = guards {
        tenant = tenant.layer(axum::middleware::from_fn_with_state(
            guards.storage.clone(),
            storage_guard::guard,
        ));
        tenant = tenant.layer(axum::middleware::from_fn_with_state(
            guards.storage.manager,
            move_guard::guard,
        ));
        if let Some(quota) = guards.client_quota {
            public = public.layer(quota);
        }
        if let Some(quota) = guards.tenant_quota {
            tenant = tenant.layer(quota);
        }
        // Inside the tenant layer (it needs the tenant), outside the quota (429s count).
        tenant = tenant.layer(guards.top_tenants).layer(guards.tenant);
        admin = admin.layer(guards.admin);
    }
    let (api, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::health::router())
        .merge(routes::docs::router())
        .merge(public)
        .merge(tenant)
        .merge(admin)
        .split_for_parts();
    let (metrics, metrics_doc) = routes::metrics::router().split_for_parts();
    doc.merge(metrics_doc);
    crate::openapi::add_links(&mut doc);
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    (api, metrics, doc)
}

/// The OpenAPI document of every route the server can serve.
#[cfg(test)]
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    assemble(None).2
}

pub(crate) fn build(config: &Arc<Config>, parts: Parts) -> Result<Routers, Error> {
    let top_tenants = Arc::new(TopTenants::new(config.top_tenants.clone())?);
    let guards = Guards::new(config, &parts.services, &top_tenants)?;
    let (api, metrics, doc) = assemble(Some(guards));
    let openapi_json = serde_json::to_vec(&doc)
        .map(bytes::Bytes::from)
        .unwrap_or_default();
    let state = AppState::new(StateInner {
        config: config.clone(),
        services: parts.services,
        metrics: parts.metrics,
        top_tenants,
        openapi_json,
        started: std::time::Instant::now(),
    });
    let metrics_enabled = config.features.metrics;
    let separate_metrics = metrics_enabled && config.http.metrics_port.is_some();
    let api = if metrics_enabled && !separate_metrics {
        api.merge(metrics.clone())
    } else {
        api
    };
    let api = api
        .fallback(not_found)
        .layer(MetricsLayer::new())
        .with_state(state.clone());
    let api = with_http_layers(api, config);
    let metrics = separate_metrics
        .then(|| with_http_layers(metrics.fallback(not_found).with_state(state), config));
    Ok(Routers { api, metrics })
}

fn with_http_layers(router: Router, config: &Config) -> Router {
    let request_id = HeaderName::from_static(REQUEST_ID);
    let middleware = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(PropagateRequestIdLayer::new(request_id))
        .layer(cors(&config.http.allowed_origins))
        .layer(axum::middleware::map_response(json_errors))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            config.http.request_timeout,
        ))
        .layer(RequestBodyLimitLayer::new(config.http.body_limit_bytes))
        .layer(DefaultBodyLimit::max(config.http.body_limit_bytes));
    router.layer(middleware)
}

fn request_span(request: &Request<Body>) -> tracing::Span {
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %id,
    )
}

fn cors(origins: &AllowedOrigins) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static(REQUEST_ID),
        ])
        .expose_headers([
            HeaderName::from_static(REQUEST_ID),
            header::RETRY_AFTER,
            HeaderName::from_static("ratelimit-limit"),
            HeaderName::from_static("ratelimit-remaining"),
            HeaderName::from_static("ratelimit-reset"),
        ])
        .max_age(Duration::from_secs(600));
    match origins {
        AllowedOrigins::Any => layer.allow_origin(AllowOrigin::any()),
        AllowedOrigins::List(list) => layer.allow_origin(AllowOrigin::list(
            list.iter().filter_map(|o| HeaderValue::from_str(o).ok()),
        )),
    }
}

/// Gives every error answer that middleware produced (timeout, body limit, method not
/// allowed) the API's JSON error body, keeping its status and headers.
async fn json_errors<B>(response: Response<B>) -> Response
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response.map(Body::new);
    }
    let (code, message) = match status {
        StatusCode::NOT_FOUND => ("route_not_found", "no such route"),
        StatusCode::METHOD_NOT_ALLOWED => {
            ("method_not_allowed", "method not allowed on this route")
        }
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "request body too large"),
        StatusCode::SERVICE_UNAVAILABLE => ("timeout", "the request took too long"),
        _ => ("http_error", status.canonical_reason().unwrap_or("error")),
    };
    let (mut parts, _) = response.into_parts();
    let fresh = ApiError::new(status, code, message).into_response();
    let (fresh_parts, body) = fresh.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    if let Some(content_type) = fresh_parts.headers.get(header::CONTENT_TYPE) {
        parts
            .headers
            .insert(header::CONTENT_TYPE, content_type.clone());
    }
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests;
