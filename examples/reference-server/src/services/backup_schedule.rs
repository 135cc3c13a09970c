//! Scheduled backups and restore tests, each pass run by one instance at a time
//! ([`Leader`]): every `BACKUP_SCHEDULE_INTERVAL_MS` the tenants whose plan's backup schedule
//! is due are backed up (then pruned to the schedule's retention); every
//! `BACKUP_VERIFY_INTERVAL_MS` the newest backups of `BACKUP_VERIFY_SAMPLE` tenants are
//! restore-tested.
//!
//! The pass runs the backups itself while it holds the lease, rather than queueing jobs: a
//! second instance taking the lease next sees the new backups, so a due tenant is backed up
//! once however many instances run.

use std::future::Future;
use std::time::Duration;

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Services;
use super::leader::Leader;
use crate::config::MaintenanceSettings;

/// Starts the passes `settings` switch on.
pub(super) fn start(
    services: &Services,
    leader: &Leader,
    settings: &MaintenanceSettings,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) {
    if let Some(every) = settings.backup_schedule {
        let services = services.clone();
        every_tick(
            every,
            leader,
            "backup-schedule",
            tasks,
            shutdown,
            move || {
                let services = services.clone();
                async move { scheduled_backups(&services).await }
            },
        );
    }
    if let Some(every) = settings.backup_verify {
        let services = services.clone();
        let sample = settings.backup_verify_sample;
        every_tick(every, leader, "backup-verify", tasks, shutdown, move || {
            let services = services.clone();
            async move {
                match services.manager.verify_latest_backups(Some(sample)).await {
                    Ok(report) => tracing::info!(
                        checked = report.checked,
                        failed = report.failed,
                        "scheduled restore test"
                    ),
                    Err(error) => tracing::warn!(%error, "scheduled restore test failed"),
                }
            }
        });
    }
}

/// Runs `pass` every `every` until `shutdown`, under the lease `name`.
pub(super) fn every_tick<F, Fut>(
    every: Duration,
    leader: &Leader,
    name: &'static str,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
    pass: F,
) where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let leader = leader.clone();
    super::periodic::every(every, tasks, shutdown, move || {
        let (leader, pass) = (leader.clone(), pass());
        async move {
            match leader.run_exclusive(name, pass).await {
                Ok(Some(())) => {}
                Ok(None) => tracing::debug!(pass = name, "another instance runs this pass"),
                Err(error) => tracing::warn!(pass = name, %error, "maintenance lease unavailable"),
            }
        }
    });
}

/// Backs up every due tenant (one at a time), pruning each after its backup.
async fn scheduled_backups(services: &Services) {
    let due = match services
        .manager
        .due_backups(OffsetDateTime::now_utc())
        .await
    {
        Ok(due) => due,
        Err(error) => {
            tracing::warn!(%error, "backup schedule: cannot find the due tenants");
            return;
        }
    };
    metrics::gauge!("tenant_backups_due").set(due.len() as f64);
    for tenant in &due {
        metrics::counter!("tenant_backups_scheduled_started_total").increment(1);
        match services.manager.run_scheduled_backup(tenant).await {
            Ok((record, pruned)) => {
                metrics::counter!("tenant_backups_scheduled_total", "outcome" => "ok").increment(1);
                tracing::info!(
                    tenant = %tenant.tenant.id,
                    backup = %record.id,
                    pruned = pruned.deleted.len(),
                    "scheduled backup taken"
                );
            }
            Err(error) => {
                metrics::counter!("tenant_backups_scheduled_total", "outcome" => "failed")
                    .increment(1);
                tracing::warn!(tenant = %tenant.tenant.id, %error, "scheduled backup failed");
            }
        }
    }
}
