//! `tenant-cli migrate check`: the drift check of every tenant's schema against the schema of
//! its recorded migration version.

use tenant_manager::Isolation;
use tenant_manager::postgres::{DriftOptions, DriftReport};

use super::exit::{CliError, Exit};
use super::ops::{Ops, print_json};

/// Runs the check and prints the report (JSON with `json`, else one line per difference on
/// stdout and a summary on stderr). Exit 1 when a tenant drifted, 7 when some storage could not
/// be read, 0 when all is as the migrations make it.
pub(crate) async fn check(
    ops: &Ops,
    concurrency: u32,
    isolation: Option<&str>,
    json: bool,
) -> Result<Exit, CliError> {
    let isolation = isolation.map(str::parse::<Isolation>).transpose()?;
    let options = DriftOptions::default()
        .with_concurrency(usize::try_from(concurrency).unwrap_or(4))
        .with_isolation(isolation);
    let report = ops.postgres.drift().check(&options).await?;
    if json {
        print_json(&report);
    } else {
        print_lines(&report);
    }
    Ok(exit_of(&report))
}

fn exit_of(report: &DriftReport) -> Exit {
    if !report.drifted.is_empty() {
        Exit::Failure
    } else if !report.failed.is_empty() {
        Exit::Partial
    } else {
        Exit::Success
    }
}

fn print_lines(report: &DriftReport) {
    for drifted in &report.drifted {
        let tenants: Vec<&str> = drifted.tenants.iter().map(|t| t.slug.as_str()).collect();
        let place = format!(
            "{}/{}/{}",
            drifted.storage.server, drifted.storage.database, drifted.storage.schema
        );
        for d in &drifted.differences {
            let object = match &d.table {
                Some(table) => format!("{table}.{}", d.name),
                None => d.name.clone(),
            };
            println!(
                "{}\t{place}\tv{}\t{} {} {object}: expected {}, actual {}",
                tenants.join(","),
                drifted.version,
                d.change.as_str(),
                d.kind.as_str(),
                d.expected.as_deref().unwrap_or("(none)"),
                d.actual.as_deref().unwrap_or("(none)"),
            );
        }
    }
    for failed in &report.failed {
        eprintln!(
            "not checked: {}/{}/{}: {}",
            failed.storage.server, failed.storage.database, failed.storage.schema, failed.error
        );
    }
    eprintln!(
        "{} storages of {} tenants checked: {} tenants drifted, {} storages not checked",
        report.storages_checked,
        report.tenants_checked,
        report.drifted_tenants(),
        report.failed.len()
    );
}
