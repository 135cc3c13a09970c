//! Webhooks under `/api/admin/webhooks`: the endpoints of `WEBHOOK_ENDPOINTS` (never their
//! secret) with this instance's delivery counts, each endpoint's dead letters, and
//! redelivering them.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use tenant_manager::Error;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{PathParams, QueryParams};
use crate::error::{ApiError, ErrorBody};
use crate::services::webhooks::{DeadLetter, Endpoint, EndpointView, Redelivery};
use crate::state::AppState;

/// Dead letters listed at most by one call.
const MAX_LIMIT: usize = 1000;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_endpoints))
        .routes(routes!(dead_letters))
        .routes(routes!(redeliver_one))
        .routes(routes!(redeliver_all))
}

/// How many dead letters to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeadLetterParams {
    /// 1 to 1000 (default 100), oldest first.
    limit: Option<String>,
}

/// Dead letters queued for redelivery.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Queued {
    /// How many (at most 1000 per call).
    queued: usize,
}

/// The endpoint `id`, or `404 webhook_not_found`.
fn endpoint(state: &AppState, id: &str) -> Result<Arc<Endpoint>, ApiError> {
    state
        .services
        .webhooks
        .endpoint(id)?
        .ok_or_else(|| ApiError::Http {
            status: StatusCode::NOT_FOUND,
            code: "webhook_not_found",
            message: "no webhook endpoint has this id".to_owned(),
            field: Some("id"),
        })
}

/// The webhook endpoints (id, URL without its query, event kinds; never the secret), with
/// this instance's delivery counts since it started.
#[utoipa::path(get, path = "/api/admin/webhooks", tag = "admin", security(("admin_key" = [])),
    responses(
        (status = 200, description = "The endpoints", body = [EndpointView]),
        (status = 401, description = "Missing or wrong X-Admin-Key", body = ErrorBody),
    ))]
pub(crate) async fn list_endpoints(State(state): State<AppState>) -> Json<Vec<EndpointView>> {
    Json(state.services.webhooks.views())
}

/// The endpoint's dead letters, oldest first: the events whose every attempt failed, each
/// with the last error. With Redis they are shared by every instance; without, this
/// instance's.
#[utoipa::path(get, path = "/api/admin/webhooks/{id}/dead-letters", tag = "admin", security(("admin_key" = [])),
    params(("id" = String, Path, description = "Endpoint id"), DeadLetterParams),
    responses(
        (status = 200, description = "The dead letters", body = [DeadLetter]),
        (status = 400, description = "A parameter is invalid (`field`: `id`, `limit`)", body = ErrorBody),
        (status = 401, description = "Missing or wrong X-Admin-Key", body = ErrorBody),
        (status = 404, description = "No such endpoint (`field`: `id`)", body = ErrorBody),
        (status = 503, description = "Redis is unavailable", body = ErrorBody),
    ))]
pub(crate) async fn dead_letters(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    QueryParams(params): QueryParams<DeadLetterParams>,
) -> Result<Json<Vec<DeadLetter>>, ApiError> {
    let limit = match params.limit.as_deref() {
        None => 100,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| Error::invalid("limit", "must be an integer from 1 to 1000"))?,
    };
    let endpoint = endpoint(&state, &id)?;
    Ok(Json(endpoint.dead.list(limit).await?))
}

/// Takes one dead letter and posts its event to the endpoint now, once (signed, with the same
/// event id). If that attempt fails too, the event goes back to the dead letters under a new
/// id (`dead_letter_id`).
#[utoipa::path(post, path = "/api/admin/webhooks/{id}/dead-letters/{dead_letter_id}/redeliver", tag = "admin", security(("admin_key" = [])),
    params(
        ("id" = String, Path, description = "Endpoint id"),
        ("dead_letter_id" = String, Path, description = "Dead letter id (`<ms>-<seq>`)"),
    ),
    responses(
        (status = 200, description = "What the attempt did (`delivered`, else `error` and the new `dead_letter_id`)", body = Redelivery),
        (status = 400, description = "A parameter is invalid (`field`: `id`, `dead_letter_id`)", body = ErrorBody),
        (status = 401, description = "Missing or wrong X-Admin-Key", body = ErrorBody),
        (status = 404, description = "No such endpoint (`field`: `id`) or dead letter (`field`: `dead_letter_id`)", body = ErrorBody),
        (status = 503, description = "Redis is unavailable", body = ErrorBody),
    ))]
pub(crate) async fn redeliver_one(
    State(state): State<AppState>,
    PathParams((id, dead_letter_id)): PathParams<(String, String)>,
) -> Result<Json<Redelivery>, ApiError> {
    let endpoint = endpoint(&state, &id)?;
    crate::services::webhooks::validate_dead_letter_id(&dead_letter_id)?;
    state
        .services
        .webhooks
        .redeliver(endpoint, &dead_letter_id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::Http {
            status: StatusCode::NOT_FOUND,
            code: "dead_letter_not_found",
            message: "the endpoint has no dead letter with this id".to_owned(),
            field: Some("dead_letter_id"),
        })
}

/// Redelivers the endpoint's dead letters (up to 1000, oldest first) in the background, one
/// attempt each; those that fail again go back to the dead letters.
#[utoipa::path(post, path = "/api/admin/webhooks/{id}/dead-letters/redeliver", tag = "admin", security(("admin_key" = [])),
    params(("id" = String, Path, description = "Endpoint id")),
    responses(
        (status = 202, description = "Queued", body = Queued),
        (status = 400, description = "The id is invalid (`field`: `id`)", body = ErrorBody),
        (status = 401, description = "Missing or wrong X-Admin-Key", body = ErrorBody),
        (status = 404, description = "No such endpoint (`field`: `id`)", body = ErrorBody),
        (status = 503, description = "Redis is unavailable", body = ErrorBody),
    ))]
pub(crate) async fn redeliver_all(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    let endpoint = endpoint(&state, &id)?;
    let queued = state.services.webhooks.redeliver_all(endpoint).await?;
    Ok((StatusCode::ACCEPTED, Json(Queued { queued })))
}
