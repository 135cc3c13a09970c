//! `tenant-cli tenants move TENANT --to SERVER [--database DB] [--wait]`, `--resume`,
//! `--finish`, `--status`, `--cancel`.

use tenant_manager::{MoveState, ServerId};

use super::exit::{CliError, Exit};
use super::ops::{Ops, print_json};

/// Arguments of `tenants move`.
#[derive(Debug, clap::Args)]
#[non_exhaustive]
pub struct MoveArgs {
    /// Tenant id or slug.
    pub tenant: String,
    /// The database server to move it to (an id of `TENANT_SERVERS`, or `default`).
    #[arg(long, required_unless_present_any = ["resume", "finish", "status", "cancel"])]
    pub to: Option<String>,
    /// For schema and shared tenants: the shared database there (default: the deployment's).
    #[arg(long)]
    pub database: Option<String>,
    /// Run the move here until writes resume, instead of queueing it for the worker.
    #[arg(long)]
    pub wait: bool,
    /// Run the tenant's unfinished move here from its first step not done.
    #[arg(long, conflicts_with_all = ["to", "finish", "status"])]
    pub resume: bool,
    /// Drop the old storage of the tenant's last move if its grace period is over.
    #[arg(long, conflicts_with_all = ["to", "status"])]
    pub finish: bool,
    /// Show the tenant's last move.
    #[arg(long, conflicts_with = "to")]
    pub status: bool,
    /// Cancel the tenant's move (allowed until it is switched): the fence on the source
    /// lifted, the partial copy dropped, the tenant active where it was. Run it again to
    /// finish a cancel that was interrupted.
    #[arg(long, conflicts_with_all = ["to", "resume", "finish", "status", "wait"])]
    pub cancel: bool,
}

/// Runs `tenants move`.
pub(crate) async fn run(ops: &Ops, args: MoveArgs) -> Result<Exit, CliError> {
    let tenant = ops.tenant(&args.tenant).await?;
    let manager = &ops.manager;
    if args.status {
        print_json(&manager.move_status(tenant.id).await?);
        return Ok(Exit::Success);
    }
    if args.cancel {
        print_json(&manager.cancel_move(tenant.id).await?);
        return Ok(Exit::Success);
    }
    if args.finish {
        print_json(&manager.finish_move(tenant.id).await?);
        return Ok(Exit::Success);
    }
    if args.resume {
        print_json(&manager.run_move(tenant.id).await?);
        return Ok(Exit::Success);
    }
    let Some(to) = args.to.as_deref() else {
        return Err(CliError::new(Exit::Usage, "--to SERVER is required"));
    };
    let server = ServerId::new(to)?;
    // The same command again resumes a move to the same server that did not finish.
    let unfinished = manager
        .move_status(tenant.id)
        .await?
        .filter(|m| m.state == MoveState::Running && m.to.server == server);
    let record = match unfinished {
        Some(record) if args.wait => manager.run_move(record.tenant_id).await?,
        Some(record) => record,
        None if args.wait => {
            manager
                .begin_move(tenant.id, &server, args.database.as_deref())
                .await?;
            manager.run_move(tenant.id).await?
        }
        None => {
            manager
                .move_tenant(tenant.id, &server, args.database.as_deref())
                .await?
        }
    };
    print_json(&record);
    Ok(Exit::Success)
}
