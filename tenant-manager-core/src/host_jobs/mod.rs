//! Host jobs: the host application's own job kinds, each job tied to one tenant and run
//! inside that tenant's context.
//!
//! A host registers a handler per kind on [`HostJobs`], enqueues jobs with the tenant's id
//! ([`HostJobs::enqueue`] checks the tenant exists and is active), and runs a
//! [`HostJobWorker`] (or several, in as many processes as it likes). The worker runs each job
//! with a [`JobContext`]: the tenant's record as it is when the job starts, a connection
//! scoped to that tenant from the pool manager (acquired on first use), and a tracing span
//! with the tenant and the job. Jobs of suspended tenants are held, not run, and jobs of
//! deleted tenants dropped. Tenants share the queue in turn, so one tenant's flood delays
//! another tenant's next job by at most one job per tenant with work waiting (the fairness
//! bound of the [`JobQueue`](crate::traits::JobQueue) contract).
//!
//! ```
//! use std::sync::Arc;
//!
//! use tenant_manager_core::host_jobs::{HostJobs, HostWorkerConfig, JobContext};
//! use tenant_manager_core::memory::{InMemoryJobQueue, InMemoryRegistry};
//! use tenant_manager_core::{Isolation, NewTenant, TenantRegistry, TenantSlug, TenantStatus};
//! use tokio_util::sync::CancellationToken;
//!
//! async fn send_invoice(ctx: JobContext<()>, payload: serde_json::Value) -> tenant_manager_core::Result<()> {
//!     tracing::info!(tenant = %ctx.tenant().slug, invoice = %payload["invoice"], "sending");
//!     Ok(())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> tenant_manager_core::Result<()> {
//! let registry = Arc::new(InMemoryRegistry::new());
//! let acme = NewTenant::new(TenantSlug::new("acme")?, "Acme", Isolation::Schema)?;
//! let tenant = registry.create_tenant(acme).await?.id;
//! registry.transition(tenant, TenantStatus::Provisioning, None).await?;
//! registry.transition(tenant, TenantStatus::Active, None).await?;
//! let jobs = HostJobs::<()>::builder(Arc::new(InMemoryJobQueue::default()), registry)
//!     .register("billing.send_invoice", send_invoice)?
//!     .build();
//! jobs.enqueue(tenant, "billing.send_invoice", serde_json::json!({ "invoice": 42 })).await?;
//!
//! let worker = jobs.worker(HostWorkerConfig::default())?;
//! let report = worker.run_once(&CancellationToken::new()).await?;
//! assert!(report.is_some());
//! # Ok(())
//! # }
//! ```

mod config;
mod context;
mod handler;
mod jobs;
mod schedules;
mod worker;

pub use config::HostWorkerConfig;
pub use context::JobContext;
pub use handler::JobHandler;
pub use jobs::{HostJobs, HostJobsBuilder};
pub use worker::{HostJobOutcome, HostJobReport, HostJobWorker};

/// Checks of the host job worker that the adapters' tests run on their real queues (feature
/// `testing`).
#[cfg(feature = "testing")]
pub mod testing;

#[cfg(test)]
mod tests;
