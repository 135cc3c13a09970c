//! The server's plan book: the default policy from the configuration, the plans of the plan
//! store (the registry's `tm_plans`, or memory) on top, read again every `PLANS_REFRESH_MS` so
//! an edit made through another instance or `tenant-cli` applies here too.

use std::sync::Arc;

use tenant_manager::{PlanBook, PlanCatalog, PlanStore, QuotaPolicy};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;

/// The policy of every plan the store does not hold: the configured request rate and
/// per-tenant connections; usage limits lifted when `ENABLE_QUOTAS` is off.
pub(crate) fn default_policy(config: &Config) -> QuotaPolicy {
    lifted(
        config,
        QuotaPolicy {
            rate: config.rate_limit,
            max_connections: config.pool.max_per_tenant,
            ..QuotaPolicy::default()
        },
    )
}

/// With `ENABLE_QUOTAS=false`, usage is still counted, never refused.
fn lifted(config: &Config, mut policy: QuotaPolicy) -> QuotaPolicy {
    if !config.features.quotas {
        policy.max_users = u64::MAX;
        policy.max_storage_bytes = u64::MAX;
    }
    policy
}

/// The catalog of the stored plans over the default policy.
///
/// # Errors
/// The store's.
pub(crate) async fn load(
    config: &Config,
    store: &dyn PlanStore,
) -> tenant_manager::Result<PlanCatalog> {
    let plans = store.list_plans().await?;
    Ok(plans.into_iter().fold(
        PlanCatalog::new(default_policy(config)),
        |catalog, (plan, policy)| catalog.with_plan(plan, lifted(config, policy)),
    ))
}

/// Reads the store again into `book`.
///
/// # Errors
/// The store's; the book keeps its catalog.
pub(crate) async fn reload(
    config: &Config,
    store: &dyn PlanStore,
    book: &PlanBook,
) -> tenant_manager::Result<()> {
    book.replace(load(config, store).await?);
    Ok(())
}

/// Reloads `book` every `PLANS_REFRESH_MS` until `shutdown`; a failed read keeps the last
/// catalog (and is logged).
pub(crate) fn start_refresh(
    config: Arc<Config>,
    store: Arc<dyn PlanStore>,
    book: PlanBook,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) {
    let interval = config.usage.plans_refresh;
    super::periodic::every(interval, tasks, shutdown, move || {
        let (config, store, book) = (config.clone(), store.clone(), book.clone());
        async move {
            if let Err(error) = reload(&config, store.as_ref(), &book).await {
                tracing::warn!(%error, "plan catalog refresh failed; keeping the last one");
            }
        }
    });
}
