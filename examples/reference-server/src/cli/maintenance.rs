//! `tenant-cli migrate`, `backup`, `restore` and `worker`.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tenant_manager::BackupId;
use tenant_manager::postgres::FleetOptions;
use tenant_manager::postgres::migrate::FleetProgress;
use tenant_manager::postgres::registry::global_schema_version;
use tenant_manager::worker::WorkerConfig;
use tokio_util::sync::CancellationToken;

use super::exit::{CliError, Exit};
use super::ops::{Ops, print_json};
use super::{BackupArgs, MigrateTarget, RestoreArgs, WorkerArgs};
use crate::services::worker::consumer_name;

/// A progress bar on stderr (hidden when stderr is not a terminal).
fn progress(total: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(u64::try_from(total).unwrap_or(0));
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_owned());
    bar
}

/// `migrate global` (connecting applies it; then the app login and its grants, and the
/// registry login), `migrate claim-shared` and `migrate tenants`.
pub(crate) async fn migrate(ops: &Ops, target: MigrateTarget) -> Result<Exit, CliError> {
    match target {
        MigrateTarget::Global => {
            println!(
                "global database migrated (schema version {})",
                global_schema_version()
            );
            let report = ops.postgres.ensure_app_login().await?;
            println!(
                "app login ready ({} servers, {} databases checked)",
                report.servers, report.databases
            );
            if let Some(report) = ops.postgres.ensure_registry_login(&ops.config).await? {
                println!(
                    "registry login ready (owns {} registry tables)",
                    report.relations
                );
            }
            Ok(Exit::Success)
        }
        MigrateTarget::ClaimShared => {
            let report = ops.postgres.claim_shared(&ops.config).await?;
            for database in &report.claimed {
                println!("claimed: {database}");
            }
            for database in &report.already_ours {
                println!("already this deployment's: {database}");
            }
            for (database, why) in &report.refused {
                eprintln!("left alone: {database}: {why}");
            }
            Ok(if report.refused.is_empty() {
                Exit::Success
            } else {
                Exit::Partial
            })
        }
        MigrateTarget::Check {
            concurrency,
            isolation,
            json,
        } => super::drift::check(ops, concurrency, isolation.as_deref(), json).await,
        MigrateTarget::Tenants { concurrency } => {
            let migrator = ops
                .postgres
                .migrator()
                .with_events(ops.events.clone(), tenant_manager::Actor::Admin);
            let options =
                FleetOptions::default().with_concurrency(usize::try_from(concurrency).unwrap_or(4));
            let bar = progress(0, "migrating tenants");
            let shown = bar.clone();
            let report = migrator
                .migrate_all(
                    &options,
                    Some(std::sync::Arc::new(move |p: &FleetProgress| {
                        shown.set_length(u64::try_from(p.total).unwrap_or(0));
                        shown.set_position(u64::try_from(p.done).unwrap_or(0));
                    })),
                )
                .await?;
            bar.finish_and_clear();
            for failure in report.failures() {
                eprintln!("failed: {failure:?}");
            }
            println!(
                "{} tenants migrated, {} failed, {} not started",
                report.succeeded(),
                report.failed(),
                report.not_started.len()
            );
            Ok(if report.failed() > 0 || report.halted {
                Exit::Partial
            } else {
                Exit::Success
            })
        }
    }
}

/// `backup --all` or `backup TENANT`.
pub(crate) async fn backup(ops: &Ops, args: BackupArgs) -> Result<Exit, CliError> {
    if let Some(reference) = args.tenant {
        let tenant = ops.tenant(&reference).await?;
        print_json(&tenant_manager::Backup::backup(ops.backup.as_ref(), &tenant).await?);
        return Ok(Exit::Success);
    }
    let bar = progress(0, "backing up tenants");
    let summary = ops
        .manager
        .backup_all(4, |p| {
            bar.set_length(u64::try_from(p.total).unwrap_or(0));
            bar.set_position(u64::try_from(p.completed).unwrap_or(0));
        })
        .await?;
    bar.finish_and_clear();
    for record in &summary.backups {
        println!(
            "{}\t{}\t{}\t{} bytes",
            record.tenant_id, record.id, record.key, record.size_bytes
        );
    }
    for (tenant, error) in &summary.failures {
        eprintln!("failed: {tenant}: {error}");
    }
    eprintln!(
        "{} backed up, {} failed",
        summary.backups.len(),
        summary.failures.len()
    );
    Ok(if summary.failures.is_empty() {
        Exit::Success
    } else {
        Exit::Partial
    })
}

/// `restore BACKUP --into TENANT`.
pub(crate) async fn restore(ops: &Ops, args: RestoreArgs) -> Result<Exit, CliError> {
    let backup = args.backup.parse::<BackupId>()?;
    let target = ops.tenant(&args.into).await?;
    tenant_manager::Backup::restore(ops.backup.as_ref(), backup, &target).await?;
    println!(
        "restored backup {backup} into {} ({})",
        target.slug, target.id
    );
    Ok(Exit::Success)
}

/// `worker`: runs until SIGTERM or ctrl-c; the current job is handed back on shutdown.
pub(crate) async fn worker(ops: &Ops, args: WorkerArgs) -> Result<Exit, CliError> {
    let consumer = args.consumer.unwrap_or_else(consumer_name);
    let worker = ops.manager.worker(
        WorkerConfig::default()
            .with_consumer(consumer)
            .with_shutdown_grace(Duration::from_secs(10)),
    )?;
    let token = CancellationToken::new();
    let signal = tokio::spawn(crate::app::cancel_on_signal(token.clone()));
    worker.run(token).await;
    signal.abort();
    Ok(Exit::Success)
}
