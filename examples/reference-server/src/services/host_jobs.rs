//! The host jobs of the reference server: one demo kind, run by an in-process worker inside
//! each job's tenant context, on a queue of their own (Redis with `REDIS_URL`).

use std::sync::Arc;

use tenant_manager::host_jobs::{HostJobs, HostWorkerConfig, JobContext};
use tenant_manager::manager::TenantManager;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Services, Shared};
use crate::companies::{CompanyStore, MAX_PAGE};
use crate::startup_error::StartupError;

/// The demo kind: counts the tenant's companies (through its own scoped storage) and logs the
/// count inside the job's tenant span.
pub(crate) const COUNT_COMPANIES: &str = "demo.count_companies";

/// Most pages of companies one demo job reads.
const MAX_PAGES: usize = 100;

/// The host jobs over the shared host queue and schedules, with the demo kind registered.
pub(super) fn build(
    manager: &TenantManager,
    companies: Arc<dyn CompanyStore>,
    shared: &Shared,
) -> Result<HostJobs<()>, StartupError> {
    let count = move |ctx: JobContext<()>, _payload: serde_json::Value| {
        let companies = Arc::clone(&companies);
        async move {
            let (mut count, mut after) = (0, None);
            for _ in 0..MAX_PAGES {
                let page = companies.list(ctx.tenant(), after, MAX_PAGE).await?;
                count += page.items.len();
                after = page.next;
                if after.is_none() {
                    break;
                }
            }
            tracing::info!(companies = count, "counted the tenant's companies");
            metrics::counter!("host_demo_jobs_total").increment(1);
            Ok(())
        }
    };
    Ok(HostJobs::builder(
        Arc::clone(&shared.host_queue),
        Arc::clone(manager.registry()),
    )
    .with_schedules(Arc::clone(&shared.schedules))
    .register(COUNT_COMPANIES, count)
    .map_err(|e| StartupError::backend("host jobs", e))?
    .build())
}

/// Starts the host job worker; it stops (handing its job back) on `shutdown`. Readiness
/// reports it down if it ever stops while the server runs.
pub(super) fn start(
    services: Services,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) -> Result<Services, StartupError> {
    let consumer = format!("host-{}", super::worker::consumer_name());
    let consumer: String = consumer.chars().take(64).collect();
    let worker = services
        .host_jobs
        .worker(HostWorkerConfig::default().with_consumer(consumer))
        .map_err(|e| StartupError::backend("host job worker", e))?;
    Ok(super::worker::spawn_watched(
        services,
        tasks,
        shutdown,
        "host_jobs",
        move |token| async move { worker.run(token).await },
    ))
}
