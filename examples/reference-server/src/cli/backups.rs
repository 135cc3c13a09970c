//! `tenant-cli backups list|restore|prune|verify`: a tenant's backups, restores into a tenant
//! or as a new tenant, retention, and restore tests (the store is the server's:
//! `BACKUP_STORE`).

use clap::Subcommand;
use tenant_manager::BackupId;
use tenant_manager::lifecycle::retention::RetentionPolicy;
use tenant_manager::manager::RestoreAsNew;

use super::exit::{CliError, Exit};
use super::ops::{Ops, print_json};

/// `tenant-cli backups ...`.
#[derive(Debug, Subcommand)]
#[non_exhaustive]
pub enum BackupsCommand {
    /// List a tenant's backups, newest first: `backup_id created_at size isolation key`.
    List {
        /// Tenant id or slug.
        tenant: String,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Restore a backup into an existing tenant (`--into`) or as a new tenant of the
    /// backup's isolation (`--new-slug`), in one step.
    Restore {
        /// Backup id.
        backup: String,
        /// Tenant (id or slug) whose data is replaced.
        #[arg(
            long,
            required_unless_present = "new_slug",
            conflicts_with = "new_slug"
        )]
        into: Option<String>,
        /// Slug of the tenant to create and restore into.
        #[arg(long)]
        new_slug: Option<String>,
        /// Name of the tenant to create (default: its slug).
        #[arg(long, requires = "new_slug")]
        new_name: Option<String>,
        /// E-mail of the new tenant's owner (users are not in backups): prints an owner's
        /// invitation and its token, once, accepted with `POST /api/auth/accept-invitation`.
        #[arg(long, requires = "new_slug")]
        owner_email: Option<String>,
    },
    /// Delete a tenant's backups but the newest of each of the last `--daily` days and
    /// `--weekly` ISO weeks (UTC); prints the deleted ones.
    Prune {
        /// Tenant id or slug.
        tenant: String,
        /// Days whose newest backup is kept.
        #[arg(long, default_value_t = 7)]
        daily: u32,
        /// ISO weeks whose newest backup is kept.
        #[arg(long, default_value_t = 4)]
        weekly: u32,
        /// Print what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Restore test: restore the newest backup of `--sample N` random tenants (default: every
    /// active or suspended tenant) into scratch databases (always dropped) and compare the rows
    /// of each table with the counts recorded at backup time. Prints the JSON report; exits 1
    /// when a backup fails.
    Verify {
        /// Tenants sampled at random (1 to 1000).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
        sample: Option<u32>,
    },
}

/// Runs one `backups` action.
pub(crate) async fn run(ops: &Ops, action: BackupsCommand) -> Result<Exit, CliError> {
    match action {
        BackupsCommand::List { tenant, json } => {
            let tenant = ops.tenant(&tenant).await?;
            for record in ops.manager.list_backups(tenant.id).await? {
                if json {
                    println!("{}", serde_json::to_string(&record).unwrap_or_default());
                } else {
                    let isolation = record.isolation.map(|i| i.to_string()).unwrap_or_default();
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        record.id, record.created_at, record.size_bytes, isolation, record.key
                    );
                }
            }
            Ok(Exit::Success)
        }
        BackupsCommand::Restore {
            backup,
            into,
            new_slug,
            new_name,
            owner_email,
        } => {
            let backup = BackupId::parse_field(&backup, "backup")?;
            match (into, new_slug) {
                (Some(into), _) => {
                    let target = ops.tenant(&into).await?;
                    print_json(&ops.manager.restore_backup(backup, target.id).await?);
                }
                (None, Some(slug)) => {
                    let name = new_name.unwrap_or_else(|| slug.clone());
                    let mut wanted = RestoreAsNew::new(name, slug);
                    if let Some(email) = owner_email {
                        wanted = wanted.with_owner(email, ops.config.security.invitation_ttl);
                    }
                    let restored = ops.manager.restore_as_new(backup, wanted).await?;
                    match &restored.owner_invitation {
                        // The tenant as before, plus the invitation and its token.
                        Some(invited) => print_json(&serde_json::json!({
                            "tenant": restored.tenant,
                            "owner_invitation": {
                                "id": invited.invitation.id.to_string(),
                                "email": invited.invitation.email.to_string(),
                                "role": invited.invitation.role.to_string(),
                                "expires_at": invited.invitation.expires_at
                                    .format(&time::format_description::well_known::Rfc3339)
                                    .unwrap_or_default(),
                                "token": invited.token.expose(),
                            },
                        })),
                        None => print_json(&restored.tenant),
                    }
                }
                (None, None) => {
                    return Err(CliError::new(Exit::Usage, "give --into or --new-slug"));
                }
            }
            Ok(Exit::Success)
        }
        BackupsCommand::Prune {
            tenant,
            daily,
            weekly,
            dry_run,
        } => {
            let policy = RetentionPolicy::new(daily, weekly)?;
            let tenant = ops.tenant(&tenant).await?;
            let outcome = ops
                .manager
                .prune_backups(tenant.id, policy, dry_run)
                .await?;
            for record in &outcome.deleted {
                println!("{}\t{}\t{}", record.id, record.created_at, record.key);
            }
            if dry_run {
                eprintln!(
                    "{} backups would be pruned, {} kept (dry run)",
                    outcome.deleted.len(),
                    outcome.kept.len()
                );
            } else {
                eprintln!("{} backups pruned", outcome.deleted.len());
            }
            Ok(Exit::Success)
        }
        BackupsCommand::Verify { sample } => {
            let sample = sample.and_then(|n| usize::try_from(n).ok());
            let report = ops.manager.verify_latest_backups(sample).await?;
            print_json(&report);
            if report.failed > 0 {
                Ok(Exit::Failure)
            } else {
                Ok(Exit::Success)
            }
        }
    }
}
