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

use crate::config::{AllowedOrigins, Config};
use crate::error::{ApiError, not_found};
use crate::openapi::ApiDoc;
use crate::routes;
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
    pub(crate) readiness: crate::readiness::Readiness,
    pub(crate) metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

/// The OpenAPI document and the routers of every resource.
fn assemble() -> (Router<AppState>, Router<AppState>, utoipa::openapi::OpenApi) {
    let (api, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::health::router())
        .merge(routes::docs::router())
        .split_for_parts();
    let (metrics, metrics_doc) = routes::metrics::router().split_for_parts();
    doc.merge(metrics_doc);
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    (api, metrics, doc)
}

/// The OpenAPI document of every route the server can serve.
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    assemble().2
}

pub(crate) fn build(config: &std::sync::Arc<Config>, parts: Parts) -> Routers {
    let (api, metrics, doc) = assemble();
    let openapi_json = serde_json::to_vec(&doc).map(bytes::Bytes::from).unwrap_or_default();
    let state = AppState::new(StateInner {
        config: config.clone(),
        readiness: parts.readiness,
        metrics: parts.metrics,
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
    let api = with_http_layers(api.fallback(not_found).with_state(state.clone()), config);
    let metrics = separate_metrics.then(|| {
        with_http_layers(metrics.fallback(not_found).with_state(state), config)
    });
    Routers { api, metrics }
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
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "method not allowed on this route"),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "request body too large"),
        StatusCode::SERVICE_UNAVAILABLE => ("timeout", "the request took too long"),
        _ => ("http_error", status.canonical_reason().unwrap_or("error")),
    };
    let (mut parts, _) = response.into_parts();
    let fresh = ApiError::new(status, code, message).into_response();
    let (fresh_parts, body) = fresh.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    if let Some(content_type) = fresh_parts.headers.get(header::CONTENT_TYPE) {
        parts.headers.insert(header::CONTENT_TYPE, content_type.clone());
    }
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests;
