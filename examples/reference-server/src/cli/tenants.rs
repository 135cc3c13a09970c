//! `tenant-cli tenants ...`.

use tenant_manager::manager::Registration;
use tenant_manager::{Secret, TenantId, TenantQuery, TenantStatus};

use super::TenantsCommand;
use super::exit::{CliError, Exit};
use super::ops::{Ops, print_json};

/// Runs one `tenants` action.
pub(crate) async fn run(ops: &Ops, action: TenantsCommand) -> Result<Exit, CliError> {
    match action {
        TenantsCommand::List {
            status,
            limit,
            after,
            json,
        } => list(ops, status.as_deref(), limit, after.as_deref(), json).await,
        TenantsCommand::Show { tenant } => {
            print_json(&ops.tenant(&tenant).await?);
            Ok(Exit::Success)
        }
        TenantsCommand::Create {
            name,
            admin_email,
            password_env,
            slug,
            isolation,
            region,
            server,
        } => {
            let password = std::env::var(&password_env).map_err(|_| {
                CliError::new(
                    Exit::Usage,
                    format!("set the owner's password in the environment variable {password_env}"),
                )
            })?;
            let mut registration = Registration::new(name, admin_email, Secret::new(password));
            if let Some(slug) = slug {
                registration = registration.with_slug(slug);
            }
            if let Some(isolation) = isolation {
                registration = registration.with_isolation(isolation);
            }
            if let Some(region) = region {
                registration = registration.with_region(region);
            }
            if let Some(server) = server {
                registration = registration.with_server(server);
            }
            let registered = ops.manager.register_organization(registration).await?;
            let tenant = registered.tenant;
            print_json(&tenant);
            if tenant.status == TenantStatus::Failed {
                // The same command again provisions this tenant again.
                return Err(CliError::new(
                    Exit::Failure,
                    format!(
                        "{} ({}) was created but its provisioning failed: {}; run the same \
                         command again or `tenant-cli tenants retry {}`",
                        tenant.slug,
                        tenant.id,
                        tenant
                            .status_reason
                            .as_deref()
                            .unwrap_or("no reason recorded"),
                        tenant.slug
                    ),
                ));
            }
            Ok(Exit::Success)
        }
        TenantsCommand::Suspend { tenant, reason } => {
            let tenant = ops.tenant(&tenant).await?;
            let reason = reason.unwrap_or_else(|| "suspended by an operator".to_owned());
            print_json(&ops.manager.suspend(tenant.id, &reason).await?);
            Ok(Exit::Success)
        }
        TenantsCommand::Resume { tenant } => {
            let tenant = ops.tenant(&tenant).await?;
            print_json(&ops.manager.resume(tenant.id).await?);
            Ok(Exit::Success)
        }
        TenantsCommand::Retry { tenant } => retry(ops, &tenant).await,
        TenantsCommand::Move(args) => super::tenants_move::run(ops, args).await,
        TenantsCommand::SetPlan { tenant, plan } => {
            let tenant = ops.tenant(&tenant).await?;
            super::plans::set_plan(ops, &tenant, &plan).await
        }
        TenantsCommand::Delete { tenant, yes } => {
            let tenant = ops.tenant(&tenant).await?;
            if !yes {
                return Err(CliError::new(
                    Exit::Usage,
                    format!(
                        "this drops the storage of {} ({}); add --yes to confirm",
                        tenant.slug, tenant.id
                    ),
                ));
            }
            print_json(&ops.manager.delete(tenant.id).await?);
            Ok(Exit::Success)
        }
    }
}

/// Provisions a tenant again and prints it; a run that ends `Failed` is a failure.
async fn retry(ops: &Ops, reference: &str) -> Result<Exit, CliError> {
    let tenant = ops.tenant(reference).await?;
    let tenant = ops.manager.retry_provisioning(tenant.id).await?;
    print_json(&tenant);
    if tenant.status == TenantStatus::Failed {
        return Err(CliError::new(
            Exit::Failure,
            format!(
                "provisioning of {} ({}) failed again: {}",
                tenant.slug,
                tenant.id,
                tenant
                    .status_reason
                    .as_deref()
                    .unwrap_or("no reason recorded")
            ),
        ));
    }
    Ok(Exit::Success)
}

async fn list(
    ops: &Ops,
    status: Option<&str>,
    limit: u32,
    after: Option<&str>,
    json: bool,
) -> Result<Exit, CliError> {
    let status = status.map(str::parse::<TenantStatus>).transpose()?;
    let after = after.map(str::parse::<TenantId>).transpose()?;
    let query = TenantQuery::default()
        .with_status(status)
        .with_after(after)
        .with_limit(limit);
    let page = ops.manager.list(&query).await?;
    if json {
        for tenant in &page.items {
            println!("{}", serde_json::to_string(tenant).unwrap_or_default());
        }
    } else {
        println!(
            "{:<36}  {:<24}  {:<12}  {:<8}  name",
            "id", "slug", "status", "isolation"
        );
        for t in &page.items {
            println!(
                "{:<36}  {:<24}  {:<12}  {:<8}  {}",
                t.id.to_string(),
                t.slug.to_string(),
                t.status.as_str(),
                t.isolation.as_str(),
                t.name
            );
        }
    }
    if let Some(next) = page.next {
        eprintln!("more: --after {next}");
    }
    Ok(Exit::Success)
}
