//! `GET /api/admin/migrations/drift`: the drift check of every tenant's schema against the
//! schema of its recorded migration version (`tenant-cli migrate check` prints the same report).

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use tenant_manager::postgres::migrate::drift::MAX_DRIFT_CONCURRENCY;
use tenant_manager::postgres::{DriftOptions, DriftReport};
use tenant_manager::{Error, Isolation};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::QueryParams;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// Drift checks running in this instance: one at a time.
static RUNNING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(drift))
}

/// Options of the drift check. Both are read as text and validated here, so a bad value is
/// answered naming its parameter.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DriftParams {
    /// Storages read at once, 1 to 32 (default 4).
    concurrency: Option<String>,
    /// Only tenants of this isolation: `database`, `schema` or `shared` (a filtered check does
    /// not update the drift gauges).
    isolation: Option<String>,
}

impl DriftParams {
    fn options(&self) -> Result<DriftOptions, Error> {
        let concurrency = match self.concurrency.as_deref() {
            None => DriftOptions::default().concurrency,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_DRIFT_CONCURRENCY).contains(n))
                .ok_or_else(|| Error::invalid("concurrency", "must be an integer from 1 to 32"))?,
        };
        let isolation = self
            .isolation
            .as_deref()
            .map(str::parse::<Isolation>)
            .transpose()?;
        Ok(DriftOptions::default()
            .with_concurrency(concurrency)
            .with_isolation(isolation))
    }
}

/// Compares every active or suspended tenant's schema (tables, columns, indexes, constraints,
/// row-level security policies, types) with the schema its recorded migration version makes,
/// and lists the storages that differ and how. Sets the gauge
/// `tenant_manager_schema_drift_tenants`. Embedded mode has no tenant schema: the report is
/// empty.
#[utoipa::path(get, path = "/api/admin/migrations/drift", tag = "admin", security(("admin_key" = [])),
    params(DriftParams),
    responses(
        (status = 200, description = "The drift report: `storages_checked`, `tenants_checked`, `drifted` (each with `isolation`, `storage`, `tenants`, `version`, `differences` of `kind`, `table`, `name`, `change`, `expected`, `actual`) and `failed`", body = Object),
        (status = 400, description = "A parameter is invalid (`field` names it)", body = ErrorBody),
        (status = 401, description = "Missing or wrong X-Admin-Key", body = ErrorBody),
        (status = 503, description = "The global database is unavailable", body = ErrorBody),
    ))]
pub(crate) async fn drift(
    State(state): State<AppState>,
    QueryParams(params): QueryParams<DriftParams>,
) -> Result<Json<DriftReport>, ApiError> {
    let options = params.options()?;
    let Some(checker) = state.services.drift.clone() else {
        return Ok(Json(DriftReport::default()));
    };
    // One check at a time per instance: each holds up to `concurrency` + 1 admin connections.
    let permit = RUNNING
        .acquire()
        .await
        .map_err(|_| Error::internal("the drift check's semaphore is closed"))?;
    // On its own task: a request that times out or is cancelled does not stop the check
    // halfway, so its scratch database is always dropped.
    let report = tokio::spawn(async move {
        let report = checker.check(&options).await;
        drop(permit);
        report
    })
    .await
    .map_err(|e| Error::internal(format!("the drift check stopped: {e}")))??;
    Ok(Json(report))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(concurrency: Option<&str>, isolation: Option<&str>) -> DriftParams {
        DriftParams {
            concurrency: concurrency.map(str::to_owned),
            isolation: isolation.map(str::to_owned),
        }
    }

    #[test]
    fn bad_parameters_are_refused_by_name() {
        for (concurrency, isolation, field) in [
            (Some("0"), None, "concurrency"),
            (Some("33"), None, "concurrency"),
            (Some("-1"), None, "concurrency"),
            (Some("four"), None, "concurrency"),
            (None, Some("cluster"), "isolation"),
        ] {
            let err = params(concurrency, isolation).options().err();
            assert_eq!(err.as_ref().and_then(|e| e.field()), Some(field), "{err:?}");
        }
        let options = params(Some("32"), Some("shared")).options().ok();
        assert_eq!(
            options.map(|o| (o.concurrency, o.isolation)),
            Some((32, Some(Isolation::Shared)))
        );
    }
}
