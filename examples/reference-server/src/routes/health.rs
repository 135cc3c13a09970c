//! `GET /health` (liveness) and `GET /health/ready` (backends reachable).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ErrorDetail;
use crate::readiness::ComponentStatus;
use crate::state::AppState;

/// Liveness answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Health {
    /// Always `ok`.
    status: &'static str,
    /// Server version.
    version: &'static str,
    /// Seconds since start.
    uptime_seconds: u64,
}

/// Readiness answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Ready {
    /// `ready`.
    status: &'static str,
    /// Each component's state.
    components: BTreeMap<String, ComponentStatus>,
}

/// Readiness failure: the error names the first failing component.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct NotReady {
    /// `code` is `not_ready`, `field` the failing component.
    error: ErrorDetail,
    /// Each component's state.
    components: BTreeMap<String, ComponentStatus>,
}

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(live))
        .routes(routes!(ready))
}

/// Liveness: the process is up and serving HTTP.
#[utoipa::path(get, path = "/health", tag = "health",
    responses((status = 200, description = "The process is alive", body = Health)))]
pub(crate) async fn live(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: state.started.elapsed().as_secs(),
    })
}

/// Readiness: every backend this instance needs answers (database, Redis, worker).
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses(
        (status = 200, description = "Every component is up", body = Ready),
        (status = 503, description = "A required component is down", body = NotReady),
    ))]
pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    let components = state.services.readiness.check().await;
    let failing: Vec<&str> = components
        .iter()
        .filter(|(_, c)| c.status != "up")
        .map(|(name, _)| name.as_str())
        .collect();
    match failing.first() {
        None => Json(Ready {
            status: "ready",
            components,
        })
        .into_response(),
        Some(first) => {
            let error = ErrorDetail {
                code: "not_ready".to_owned(),
                message: format!("unavailable: {}", failing.join(", ")),
                field: Some((*first).to_owned()),
                tenant_id: None,
            };
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(NotReady { error, components }),
            )
                .into_response()
        }
    }
}
