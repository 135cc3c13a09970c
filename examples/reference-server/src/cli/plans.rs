//! `tenant-cli plans ...` and `tenant-cli tenants set-plan`.

use clap::Subcommand;
use serde::Serialize;
use tenant_manager::{Plan, PlanStore, QuotaPolicy, Tenant};

use super::exit::{CliError, Exit};
use super::ops::{Ops, print_json};
use crate::services::plans::default_policy;

/// `tenant-cli plans ...`: the plans of the registry (`tm_plans`). Running servers read an
/// edit within `PLANS_REFRESH_MS`.
#[derive(Debug, Subcommand)]
#[non_exhaustive]
pub enum PlansCommand {
    /// Print the stored plans and the default policy as JSON.
    List,
    /// Create or replace a plan's policy.
    Put {
        /// Plan name: 1 to 32 of [a-z0-9_-].
        name: String,
        /// The policy as JSON: `{"rate":{"limit":N,"window_ms":N},"max_users":N,
        /// "max_storage_bytes":N,"max_connections":N,"db":{"statement_timeout_ms":N,
        /// "work_mem_kb":N,"connection_limit":N}}` (`db` and each of its fields optional).
        #[arg(long)]
        policy: String,
    },
}

/// A stored plan as printed.
#[derive(Debug, Serialize)]
struct PlanLine<'a> {
    name: &'a Plan,
    policy: &'a QuotaPolicy,
}

/// Runs one `plans` action.
pub(crate) async fn run(ops: &Ops, action: PlansCommand) -> Result<Exit, CliError> {
    let store = ops.postgres.registry.as_ref();
    match action {
        PlansCommand::List => {
            let plans = store.list_plans().await?;
            print_json(&serde_json::json!({
                "default": default_policy(&ops.config),
                "plans": plans
                    .iter()
                    .map(|(name, policy)| PlanLine { name, policy })
                    .collect::<Vec<_>>(),
            }));
            Ok(Exit::Success)
        }
        PlansCommand::Put { name, policy } => {
            let plan = Plan::new(name)?;
            let policy: QuotaPolicy = serde_json::from_str(&policy).map_err(|e| {
                CliError::new(Exit::Usage, format!("--policy is not a valid policy: {e}"))
            })?;
            PlanStore::put_plan(store, &plan, &policy).await?;
            print_json(&PlanLine {
                name: &plan,
                policy: &policy,
            });
            Ok(Exit::Success)
        }
    }
}

/// Moves a tenant to `plan` and writes the plan's Postgres limits on its role; prints it.
pub(crate) async fn set_plan(ops: &Ops, tenant: &Tenant, plan: &str) -> Result<Exit, CliError> {
    let plan = Plan::new(plan)?;
    let tenant = ops.manager.change_plan(tenant.id, plan).await?;
    let limits = ops.manager.effective_quota(&tenant).db;
    ops.postgres.role_limits().apply(&tenant, &limits).await?;
    print_json(&tenant);
    Ok(Exit::Success)
}
