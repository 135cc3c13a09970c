//! The periodic drift check (`DRIFT_CHECK_INTERVAL_MS`), run by one instance at a time, so the
//! `tenant_manager_schema_drift_*` gauges stay current without anyone calling the route. The
//! gauges are this instance's: `tenant_manager_schema_drift_checked_timestamp_seconds` says
//! which instance checked last (take the series with the newest stamp).

use tenant_manager::postgres::DriftOptions;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Services;
use super::backup_schedule::every_tick;
use super::leader::Leader;
use crate::config::MaintenanceSettings;

/// Starts the check when it is switched on and there is a schema to check (not embedded).
pub(super) fn start(
    services: &Services,
    leader: &Leader,
    settings: &MaintenanceSettings,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) {
    let (Some(every), Some(checker)) = (settings.drift_check, services.drift.clone()) else {
        return;
    };
    every_tick(every, leader, "drift-check", tasks, shutdown, move || {
        let checker = checker.clone();
        async move {
            // On its own task: a shutdown does not stop the check halfway (its scratch database
            // is always dropped).
            let report =
                tokio::spawn(async move { checker.check(&DriftOptions::default()).await }).await;
            match report {
                Ok(Ok(report)) => {
                    metrics::gauge!("tenant_manager_schema_drift_checked_timestamp_seconds")
                        .set(time::OffsetDateTime::now_utc().unix_timestamp() as f64);
                    tracing::info!(drifted = report.drifted_tenants(), "periodic drift check");
                }
                Ok(Err(error)) => tracing::warn!(%error, "periodic drift check failed"),
                Err(error) => tracing::warn!(%error, "periodic drift check stopped"),
            }
        }
    });
}
