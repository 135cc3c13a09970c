//! `tenant-cli`: migrations, the tenant wall, tenants, backups, the provisioning worker and
//! load tests.
//!
//! It reads the same environment (and `.env`) as the server and talks to the same
//! backends; `loadtest` talks to a running server over HTTP. Exit codes are listed on
//! [`Exit`].

mod backups;
mod drift;
pub mod exit;
pub mod loadtest;
mod maintenance;
mod ops;
mod plans;
pub mod scale;
mod tenants;
mod tenants_move;
mod users;
mod wall;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use self::backups::BackupsCommand;
pub use self::exit::{CliError, Exit};
use self::loadtest::LoadtestArgs;
pub use self::plans::PlansCommand;
pub use self::users::UsersCommand;

/// Operate a tenant-manager deployment.
#[derive(Debug, Parser)]
#[command(name = "tenant-cli", version, about, long_about = None)]
#[non_exhaustive]
pub struct Cli {
    /// Read variables from this file instead of `./.env` (real environment variables win).
    #[arg(long, global = true, value_name = "FILE")]
    pub env_file: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
#[non_exhaustive]
pub enum Command {
    /// Run database migrations.
    Migrate {
        /// Which migrations.
        #[command(subcommand)]
        target: MigrateTarget,
    },
    /// The tenant wall of the schema and shared databases: upgrade, key rotation, checks.
    Wall {
        /// The action.
        #[command(subcommand)]
        action: WallCommand,
    },
    /// List, inspect and change tenants.
    Tenants {
        /// The action.
        #[command(subcommand)]
        action: TenantsCommand,
    },
    /// List and edit plans.
    Plans {
        /// The action.
        #[command(subcommand)]
        action: PlansCommand,
    },
    /// List a tenant's users, invite one, remove one.
    Users {
        /// The action.
        #[command(subcommand)]
        action: UsersCommand,
    },
    /// Back up one tenant (`backup TENANT`) or every active tenant (`backup --all`).
    Backup(BackupArgs),
    /// Restore a backup into an existing tenant.
    Restore(RestoreArgs),
    /// List a tenant's backups; restore one into a tenant or as a new tenant.
    Backups {
        /// The action.
        #[command(subcommand)]
        action: BackupsCommand,
    },
    /// Run the provisioning worker until SIGTERM or ctrl-c.
    Worker(WorkerArgs),
    /// Register tenants and drive tenant-scoped traffic against a running server.
    Loadtest(LoadtestArgs),
    /// The scale run: a second Postgres cluster, a server over both, N tenants registered,
    /// loaded round-robin and migrated; cleaned up afterwards.
    Scale(scale::ScaleArgs),
}

/// `tenant-cli migrate ...`.
#[derive(Debug, Subcommand)]
#[non_exhaustive]
pub enum MigrateTarget {
    /// Migrate the global (registry) database; with `REGISTRY_DATABASE_URL`, also create or
    /// update the registry login (owner of the `tm_*` tables only).
    Global,
    /// Claim the shared databases of a deployment created before storage prefixes: each one
    /// marked `tenant-manager:shared` that holds only this registry's tenants is marked as
    /// this deployment's (`tenant-manager:shared:<TENANT_STORAGE_PREFIX>`); others are listed
    /// and left alone. Idempotent.
    ClaimShared,
    /// Migrate every tenant's storage, with bounded concurrency and a progress bar.
    Tenants {
        /// Tenants migrated at once.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
        concurrency: u32,
    },
    /// Compare every active or suspended tenant's schema (tables, columns, indexes,
    /// constraints, row-level security policies, types) with the schema of its recorded
    /// migration version, and list what differs. Exits 1 when a tenant drifted, 7 when some
    /// storage could not be read.
    Check {
        /// Storages read at once.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=32))]
        concurrency: u32,
        /// Only tenants of this isolation: database, schema or shared.
        #[arg(long)]
        isolation: Option<String>,
        /// Print the report as JSON instead of one line per difference.
        #[arg(long)]
        json: bool,
    },
}

/// `tenant-cli wall ...`: the wall that keeps schema and shared tenants apart on their shared
/// pools (each checkout proves its tenant with a key derived from `TENANT_DB_SECRET`).
#[derive(Debug, Subcommand)]
#[non_exhaustive]
pub enum WallCommand {
    /// Put every existing schema and shared tenant behind the wall (the upgrade of a
    /// deployment from before it; stop the old instances first). Idempotent: a rerun finishes
    /// an interrupted run and changes nothing on a walled deployment.
    Migrate,
    /// Add the wall key N (derived from `TENANT_DB_SECRET`) to every walled database, valid
    /// from now: step 1 of a rotation, before the instances restart with `WALL_KEY_ID=N`.
    RotateKey {
        /// The new key's id.
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
        key_id: i32,
    },
    /// Make key N expire after the grace period in every walled database (run with
    /// `WALL_KEY_ID` set to the new key; the signing key cannot be retired).
    RetireKey {
        /// The old key's id.
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
        key_id: i32,
        /// How long instances still signing with it keep working: `30s`, `10m`, `2h`, `1d`.
        #[arg(long, default_value = "10m", value_parser = wall::parse_grace)]
        grace: std::time::Duration,
    },
    /// Delete expired keys from every walled database.
    PurgeKeys,
    /// Check every walled database: the wall installed, the signing key valid, no tenant
    /// schema or shared table bypassing it. Exits 1 when a problem is found.
    Check,
}

/// `tenant-cli tenants ...`.
#[derive(Debug, Subcommand)]
#[non_exhaustive]
pub enum TenantsCommand {
    /// List tenants, oldest first.
    List {
        /// Only tenants in this status.
        #[arg(long)]
        status: Option<String>,
        /// Page size (1 to 500).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Start after this tenant id (the previous page's `next`).
        #[arg(long)]
        after: Option<String>,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one tenant (by id or slug) as JSON.
    Show {
        /// Tenant id or slug.
        tenant: String,
    },
    /// Register an organisation: a tenant and its owner.
    Create {
        /// Organisation name.
        #[arg(long)]
        name: String,
        /// The owner's e-mail.
        #[arg(long)]
        admin_email: String,
        /// Read the owner's password from this environment variable (never from a flag).
        #[arg(long, default_value = "TENANT_ADMIN_PASSWORD")]
        password_env: String,
        /// Slug (derived from the name when absent).
        #[arg(long)]
        slug: Option<String>,
        /// Isolation: database, schema or shared.
        #[arg(long)]
        isolation: Option<String>,
        /// Region the tenant is pinned to (`REGION` when absent).
        #[arg(long)]
        region: Option<String>,
        /// The Postgres server to place it on (`default` or an id of `TENANT_SERVERS`),
        /// instead of the placement policy's choice.
        #[arg(long)]
        server: Option<String>,
    },
    /// Suspend a tenant: every instance refuses its requests.
    Suspend {
        /// Tenant id or slug.
        tenant: String,
        /// Why (recorded on the tenant).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Move a tenant to another database server: writes pause, the data is copied and
    /// checked, the placement switches, writes resume; the old storage is dropped after
    /// `MOVE_GRACE_SECONDS` (by the worker, or by `--finish`). A move interrupted anywhere is
    /// resumed by the same command (or `--resume`); one not switched yet is cancelled by
    /// `--cancel`.
    Move(tenants_move::MoveArgs),
    /// Resume a suspended tenant.
    Resume {
        /// Tenant id or slug.
        tenant: String,
    },
    /// Provision a pending, failed or stuck provisioning tenant again (queued for the worker
    /// with async provisioning); an active tenant is shown as it is. Exits 1 when
    /// provisioning fails again (the printed tenant's `status_reason` says why), 4 for a
    /// suspended, deleting or deleted tenant.
    Retry {
        /// Tenant id or slug.
        tenant: String,
    },
    /// Move a tenant to another plan (a stored plan or the default plan): every instance
    /// applies it on the tenant's next request; its Postgres limits are written on its role.
    SetPlan {
        /// Tenant id or slug.
        tenant: String,
        /// The plan.
        plan: String,
    },
    /// Delete a tenant and drop its storage.
    Delete {
        /// Tenant id or slug.
        tenant: String,
        /// Confirm; without it nothing is deleted.
        #[arg(long)]
        yes: bool,
    },
}

/// `tenant-cli backup ...`.
#[derive(Debug, clap::Args)]
#[non_exhaustive]
pub struct BackupArgs {
    /// Tenant id or slug.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub tenant: Option<String>,
    /// Back up every active tenant.
    #[arg(long)]
    pub all: bool,
    /// Directory the artifacts go to (default `BACKUP_DIR`).
    #[arg(long, value_name = "DIR")]
    pub destination: Option<PathBuf>,
}

/// `tenant-cli restore ...`.
#[derive(Debug, clap::Args)]
#[non_exhaustive]
pub struct RestoreArgs {
    /// Backup id to restore.
    pub backup: String,
    /// Tenant (id or slug) whose data is replaced; it may differ from the backed-up tenant.
    #[arg(long)]
    pub into: String,
    /// Directory the artifacts are in (default `BACKUP_DIR`).
    #[arg(long, value_name = "DIR")]
    pub source: Option<PathBuf>,
}

/// `tenant-cli worker`.
#[derive(Debug, clap::Args)]
#[non_exhaustive]
pub struct WorkerArgs {
    /// Consumer name in the queue (default: `worker-<host>-<pid>`).
    #[arg(long)]
    pub consumer: Option<String>,
}

/// Entry point of the `tenant-cli` binary: parses arguments, runs, prints errors on stderr
/// and returns the [`Exit`] code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tenant-cli: cannot start the async runtime: {e}");
            return Exit::Failure.into();
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(exit) => exit.into(),
        Err(error) => {
            eprintln!("tenant-cli: {error}");
            error.exit.into()
        }
    }
}

/// Runs one parsed command.
///
/// # Errors
/// [`CliError`] with the exit code and message of the failure.
pub async fn run(cli: Cli) -> Result<Exit, CliError> {
    let command = match cli.command {
        Command::Loadtest(args) => return loadtest::command(args).await,
        Command::Scale(args) => return scale::command(args).await,
        other => other,
    };
    let config = load_config(cli.env_file.as_deref())?;
    let log_level_set = std::env::var_os("LOG_LEVEL").is_some();
    crate::telemetry::init_cli(&config, log_level_set)
        .map_err(|e| CliError::new(Exit::Failure, e.to_string()))?;
    let backup_dir = match &command {
        Command::Backup(args) => args.destination.clone(),
        Command::Restore(args) => args.source.clone(),
        _ => None,
    };
    let ops = ops::Ops::connect(config, backup_dir.as_deref()).await?;
    match command {
        Command::Migrate { target } => maintenance::migrate(&ops, target).await,
        Command::Wall { action } => wall::run(&ops, action).await,
        Command::Tenants { action } => tenants::run(&ops, action).await,
        Command::Plans { action } => plans::run(&ops, action).await,
        Command::Users { action } => users::run(&ops, action).await,
        Command::Backup(args) => maintenance::backup(&ops, args).await,
        Command::Restore(args) => maintenance::restore(&ops, args).await,
        Command::Backups { action } => backups::run(&ops, action).await,
        Command::Worker(args) => maintenance::worker(&ops, args).await,
        Command::Loadtest(_) | Command::Scale(_) => Ok(Exit::Usage),
    }
}

/// The configuration from `env_file` (or `./.env`) and the environment.
fn load_config(env_file: Option<&std::path::Path>) -> Result<crate::config::Config, CliError> {
    match env_file {
        Some(path) => {
            dotenvy::from_path(path).map_err(|e| {
                CliError::new(Exit::Config, format!("cannot read {}: {e}", path.display()))
            })?;
            Ok(crate::config::Config::from_lookup(|name| {
                std::env::var(name).ok()
            })?)
        }
        None => Ok(crate::config::Config::load()?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn backups_restore_needs_into_or_a_new_slug_but_not_both() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(["tenant-cli", "backups", "restore", "b"].iter().chain(args))
        };
        assert!(parse(&[]).is_err());
        assert!(parse(&["--into", "acme", "--new-slug", "copy"]).is_err());
        assert!(parse(&["--new-name", "Copy"]).is_err());
        assert!(parse(&["--into", "acme"]).is_ok());
        assert!(parse(&["--new-slug", "copy", "--new-name", "Copy"]).is_ok());
    }

    #[test]
    fn backup_needs_a_tenant_or_all_but_not_both() {
        assert!(Cli::try_parse_from(["tenant-cli", "backup"]).is_err());
        assert!(Cli::try_parse_from(["tenant-cli", "backup", "acme", "--all"]).is_err());
        assert!(
            Cli::try_parse_from(["tenant-cli", "backup", "--all", "--destination", "/b"]).is_ok()
        );
        assert!(Cli::try_parse_from(["tenant-cli", "backup", "acme"]).is_ok());
    }

    #[test]
    fn tenants_retry_takes_one_tenant() {
        assert!(Cli::try_parse_from(["tenant-cli", "tenants", "retry"]).is_err());
        assert!(Cli::try_parse_from(["tenant-cli", "tenants", "retry", "a", "b"]).is_err());
        let cli = Cli::try_parse_from(["tenant-cli", "tenants", "retry", "acme"]);
        assert!(matches!(
            cli.map(|c| c.command),
            Ok(Command::Tenants {
                action: TenantsCommand::Retry { tenant }
            }) if tenant == "acme"
        ));
    }

    #[test]
    fn wall_commands_take_key_ids_and_grace_periods() {
        let cli = Cli::try_parse_from(["tenant-cli", "wall", "retire-key", "--key-id", "1"]);
        assert!(matches!(
            cli.map(|c| c.command),
            Ok(Command::Wall {
                action: WallCommand::RetireKey { key_id: 1, grace }
            }) if grace == std::time::Duration::from_secs(600)
        ));
        for args in [
            vec!["wall", "rotate-key"],
            vec!["wall", "rotate-key", "--key-id", "0"],
            vec!["wall", "retire-key", "--key-id", "2", "--grace", "soon"],
            vec!["wall", "check", "--key-id", "1"],
        ] {
            let argv = std::iter::once("tenant-cli").chain(args.iter().copied());
            assert!(Cli::try_parse_from(argv).is_err(), "{args:?}");
        }
        for args in [
            vec!["wall", "migrate"],
            vec!["wall", "rotate-key", "--key-id", "2"],
            vec!["wall", "retire-key", "--key-id", "1", "--grace", "0s"],
            vec!["wall", "purge-keys"],
            vec!["wall", "check"],
        ] {
            let argv = std::iter::once("tenant-cli").chain(args.iter().copied());
            assert!(Cli::try_parse_from(argv).is_ok(), "{args:?}");
        }
    }

    #[test]
    fn migrate_check_takes_a_bounded_concurrency() {
        let cli = Cli::try_parse_from(["tenant-cli", "migrate", "check", "--json"]);
        assert!(matches!(
            cli.map(|c| c.command),
            Ok(Command::Migrate {
                target: MigrateTarget::Check {
                    concurrency: 4,
                    isolation: None,
                    json: true
                }
            })
        ));
        for bad in ["0", "33", "x"] {
            let argv = ["tenant-cli", "migrate", "check", "--concurrency", bad];
            assert!(Cli::try_parse_from(argv).is_err(), "{bad}");
        }
    }

    #[test]
    fn loadtest_bounds_are_enforced() {
        assert!(Cli::try_parse_from(["tenant-cli", "loadtest", "--duration", "0"]).is_err());
        assert!(Cli::try_parse_from(["tenant-cli", "loadtest", "--duration", "3601"]).is_err());
        assert!(Cli::try_parse_from(["tenant-cli", "loadtest", "--concurrency", "5000"]).is_err());
        assert!(Cli::try_parse_from(["tenant-cli", "loadtest", "--tenants", "3"]).is_ok());
        // A baseline server takes no token: neither saved nor reused sessions apply.
        for flag in ["--sessions", "--save-sessions"] {
            let argv = ["tenant-cli", "loadtest", "--baseline", flag, "s.json"];
            assert!(Cli::try_parse_from(argv).is_err(), "{flag}");
        }
        assert!(
            Cli::try_parse_from([
                "tenant-cli",
                "loadtest",
                "--sessions",
                "a",
                "--save-sessions",
                "b"
            ])
            .is_ok()
        );
    }
}
