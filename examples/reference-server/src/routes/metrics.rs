//! `GET /metrics`: Prometheus text exposition.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::state::AppState;

/// Content type of the Prometheus text format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(scrape))
}

/// Prometheus metrics: `active_tenants`, `api_requests_total`, `api_response_time_seconds`,
/// `database_connections_total`, `database_connections`, `cache_hit_rate` and more, and the
/// `tenant_manager_top_tenant_*` series of the `TOP_TENANTS_K` busiest tenants. Served on
/// `METRICS_PORT` when it is set, else on `PORT`.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses(
        (status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
        (status = 404, description = "Metrics are disabled (ENABLE_METRICS=false)"),
    ))]
pub(crate) async fn scrape(State(state): State<AppState>) -> Response {
    let Some(handle) = &state.metrics else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "metrics_disabled",
            "metrics are disabled",
        )
        .into_response();
    };
    crate::metrics::sample(&state.services, &state.config).await;
    let mut body = handle.render();
    if !body.is_empty() && !body.ends_with('\n') {
        body.push('\n');
    }
    body.push_str(&crate::top_tenants::render(
        &state.top_tenants,
        std::time::Instant::now(),
    ));
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PROMETHEUS_TEXT),
    );
    response
}
