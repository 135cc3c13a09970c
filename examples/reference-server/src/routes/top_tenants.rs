//! `GET /api/admin/top-tenants`: requests, errors and latency of the busiest tenants.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use tenant_manager::Error;
use tenant_manager::topk::{RankBy, TopTenant};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::QueryParams;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(top_tenants))
}

/// How many tenants, ranked by what.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct TopParams {
    /// How many tenants: 1 to `TOP_TENANTS_K` (default: all of them).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    k: Option<String>,
    /// `requests` (default), `errors` or `latency` (p99, slowest first).
    by: Option<String>,
}

/// The busiest tenants.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct TopTenantsReply {
    /// What they are ranked by.
    by: &'static str,
    /// Tenants tracked (`TOP_TENANTS_K`).
    tracked: usize,
    /// Every figure halves after this many seconds: old bursts fade.
    half_life_seconds: u64,
    /// The tenants, first ranked first.
    tenants: Vec<TopTenantView>,
}

/// One of the busiest tenants. Figures are decayed counts (halved every half-life), kept
/// since the tenant entered the tracked set.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct TopTenantView {
    tenant_id: Uuid,
    slug: String,
    /// Requests; never below the true number.
    requests: u64,
    /// Most `requests` may overstate (`requests - requests_overestimate <= true`).
    requests_overestimate: u64,
    /// Answers with a 5xx status.
    errors: u64,
    /// Median time to the response head, in seconds (a histogram bucket's upper bound).
    p50_seconds: f64,
    /// 99th percentile time to the response head, in seconds.
    p99_seconds: f64,
}

impl From<TopTenant> for TopTenantView {
    fn from(top: TopTenant) -> Self {
        Self {
            tenant_id: *top.tenant.as_uuid(),
            slug: top.slug.as_str().to_owned(),
            requests: top.requests,
            requests_overestimate: top.overestimate,
            errors: top.errors,
            p50_seconds: top.p50_seconds,
            p99_seconds: top.p99_seconds,
        }
    }
}

fn by_name(by: RankBy) -> &'static str {
    match by {
        RankBy::Errors => "errors",
        RankBy::Latency => "latency",
        _ => "requests",
    }
}

/// The busiest tenants of this instance (a Space-Saving sketch of `TOP_TENANTS_K` counters),
/// with their errors and latency.
#[utoipa::path(get, path = "/api/admin/top-tenants", tag = "admin", security(("admin_key" = [])),
    params(TopParams),
    responses(
        (status = 200, description = "The busiest tenants", body = TopTenantsReply),
        (status = 400, description = "`k` or `by` is invalid (`field` names it)", body = ErrorBody),
        (status = 401, description = "Missing or wrong X-Admin-Key", body = ErrorBody),
    ))]
pub(crate) async fn top_tenants(
    State(state): State<AppState>,
    QueryParams(params): QueryParams<TopParams>,
) -> Result<Json<TopTenantsReply>, ApiError> {
    let top = &state.top_tenants;
    let tracked = top.config().k;
    let k = match params.k.as_deref() {
        None => tracked,
        Some(k) => k
            .parse::<usize>()
            .map_err(|_| Error::invalid("k", format!("must be an integer from 1 to {tracked}")))?,
    };
    let by = match params.by.as_deref() {
        None => RankBy::Requests,
        Some(by) => by.parse::<RankBy>()?,
    };
    let tenants = top.top(k, by, Instant::now())?;
    Ok(Json(TopTenantsReply {
        by: by_name(by),
        tracked,
        half_life_seconds: top.config().half_life.as_secs(),
        tenants: tenants.into_iter().map(TopTenantView::from).collect(),
    }))
}
