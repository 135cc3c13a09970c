//! `ProvisioningWorker`: runs queued `tenant.provision` and `tenant.deprovision` jobs.
//!
//! Safe to run in several processes against one queue: the queue leases each job to one
//! consumer at a time (the worker renews the lease while a job runs, so a job longer than the
//! visibility timeout is not handed to a second worker), provisioning is idempotent with a
//! per-tenant lock, and every status change goes through the registry's atomic transition.
//!
//! ```no_run
//! # async fn example(manager: tenant_manager_core::manager::TenantManager) -> tenant_manager_core::Result<()> {
//! use tenant_manager_core::worker::WorkerConfig;
//! use tokio_util::sync::CancellationToken;
//!
//! let worker = manager.worker(WorkerConfig::default())?;
//! let shutdown = CancellationToken::new();
//! let task = tokio::spawn({
//!     let shutdown = shutdown.clone();
//!     async move { worker.run(shutdown).await }
//! });
//! // ... on SIGTERM:
//! shutdown.cancel();
//! let _ = task.await;
//! # Ok(()) }
//! ```

mod backoff;
mod config;
mod handlers;
mod lease;
mod poll;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use config::WorkerConfig;

/// The backoff, lease keeping and poll loop every job worker of this crate shares.
pub(crate) use self::backoff::random_backoff;
pub(crate) use self::lease::with_lease;
pub(crate) use self::poll::poll_loop;
use crate::domain::{JobId, TenantId};
use crate::error::Result;
use crate::lifecycle::jobs_kinds::job_tenant;
use crate::lifecycle::ops::TenantOps;
use crate::traits::PoolCloser;
use crate::traits::{
    EventBus, Job, JobQueue, NackOutcome, Provisioner, ProvisioningHook, TenantCache,
    TenantRegistry,
};

/// What the worker did with one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobOutcome {
    /// The tenant was provisioned (now `Active`) or deprovisioned (now `Deleted`).
    Completed,
    /// Nothing to do: the tenant was already `Active` (or `Deleted`). Acked.
    AlreadyDone,
    /// The job no longer applies (tenant gone, or in a status the job does not act on). Acked.
    Skipped,
    /// It failed transiently; it comes back after `delay`.
    Retrying {
        /// Delay before the next delivery.
        delay: Duration,
    },
    /// It ran out of attempts and was dead-lettered; a provisioning tenant is now `Failed`.
    DeadLettered,
    /// It failed for good (an error that is not retryable); a provisioning tenant is now
    /// `Failed`. Acked.
    Failed,
    /// Unknown kind or no tenant id: handed back with the longest delay, so it ends in the
    /// dead-letter list for inspection.
    Rejected,
    /// The worker shut down before the job finished; handed back for another worker.
    Returned,
}

/// One job the worker handled.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobReport {
    /// The job.
    pub job: JobId,
    /// Its kind.
    pub kind: String,
    /// The tenant it was about.
    pub tenant: Option<TenantId>,
    /// Which delivery this was (1 for the first).
    pub attempt: u32,
    /// What happened.
    pub outcome: JobOutcome,
}

/// Takes tenant life-cycle jobs from a [`JobQueue`] and runs them: calls the provisioner,
/// retries transient failures with exponential backoff and jitter, and marks tenants
/// `Active`, `Failed` (with the reason) or `Deleted`.
///
/// While a job runs, its lease is renewed with [`JobQueue::extend`] every third of the queue's
/// visibility timeout, until the job finishes. A lease lost meanwhile (the queue gave the job
/// to another consumer) is logged as a warning and counted in `tenant_job_leases_lost_total`;
/// the job still runs to its end, which is safe since jobs are idempotent.
///
/// Give it a queue of its own: jobs of kinds it does not know are handed back to be
/// dead-lettered.
#[derive(Clone)]
pub struct ProvisioningWorker {
    ops: TenantOps,
    jobs: Arc<dyn JobQueue>,
    config: WorkerConfig,
}

impl fmt::Debug for ProvisioningWorker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProvisioningWorker")
            .field("jobs", &self.jobs)
            .field("registry", &self.ops.registry)
            .field("provisioner", &self.ops.provisioner)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ProvisioningWorker {
    /// A worker over a queue, a registry and a provisioner. Add a cache and a pool closer
    /// with [`with_cache`](Self::with_cache) and [`with_pool_closer`](Self::with_pool_closer),
    /// or build it with [`TenantManager::worker`](crate::lifecycle::manager::TenantManager::worker).
    ///
    /// # Errors
    /// [`crate::error::Error::InvalidInput`] naming a bad [`WorkerConfig`] field.
    pub fn new(
        jobs: Arc<dyn JobQueue>,
        registry: Arc<dyn TenantRegistry>,
        provisioner: Arc<dyn Provisioner>,
        config: WorkerConfig,
    ) -> Result<Self> {
        let ops = TenantOps {
            registry,
            provisioner,
            cache: None,
            pools: None,
            events: None,
            hooks: Vec::new(),
            moves: None,
        };
        Self::from_ops(ops, jobs, config)
    }

    pub(crate) fn from_ops(
        ops: TenantOps,
        jobs: Arc<dyn JobQueue>,
        config: WorkerConfig,
    ) -> Result<Self> {
        config.validate()?;
        Ok(Self { ops, jobs, config })
    }

    /// Publishes a [`TenantEvent`](crate::domain::TenantEvent) on this bus for each change
    /// it makes (provisioned, provisioning failed, deleted). A failed publish is logged and
    /// counted, never fails the job.
    #[must_use]
    pub fn with_events(mut self, events: Arc<dyn EventBus>) -> Self {
        self.ops.events = Some(events);
        self
    }

    /// Adds a host's steps around provisioning, run after those added before (see
    /// [`ProvisioningHook`] for their failure semantics).
    #[must_use]
    pub fn with_provisioning_hook(mut self, hook: Arc<dyn ProvisioningHook>) -> Self {
        self.ops.hooks.push(hook);
        self
    }

    /// Invalidates this cache whenever a tenant's status changes.
    #[must_use]
    pub fn with_cache(mut self, cache: Arc<dyn TenantCache>) -> Self {
        self.ops.cache = Some(cache);
        self
    }

    /// Closes tenants' pools before deprovisioning them.
    #[must_use]
    pub fn with_pool_closer(mut self, pools: Arc<dyn PoolCloser>) -> Self {
        self.ops.pools = Some(pools);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    /// Runs jobs until `shutdown` is cancelled. On cancellation the current job may finish
    /// within the grace period; otherwise it is handed back to the queue with no delay.
    /// Queue failures are logged and polled again after a backoff.
    pub async fn run(&self, shutdown: CancellationToken) {
        poll_loop("provisioning worker", &self.config, &shutdown, || {
            self.run_once(&shutdown)
        })
        .await;
    }

    /// Waits up to the poll wait for one job and handles it. `None` when no job came.
    ///
    /// # Errors
    /// The queue's or registry's errors when the job could be neither finished nor handed
    /// back; the queue then redelivers it after its visibility timeout.
    pub async fn run_once(&self, shutdown: &CancellationToken) -> Result<Option<JobReport>> {
        let Some(job) = self
            .jobs
            .dequeue(&self.config.consumer, self.config.poll_wait)
            .await?
        else {
            return Ok(None);
        };
        let span = tracing::info_span!(
            "tenant_job",
            job = %job.id,
            kind = %job.kind,
            attempt = job.attempt
        );
        self.process(&job, shutdown)
            .instrument(span)
            .await
            .map(Some)
    }

    async fn process(&self, job: &Job, shutdown: &CancellationToken) -> Result<JobReport> {
        let work = lease::with_lease(self.jobs.as_ref(), job, self.handle(job));
        tokio::pin!(work);
        let outcome = tokio::select! {
            out = &mut work => out,
            () = shutdown.cancelled() => {
                match tokio::time::timeout(self.config.shutdown_grace, &mut work).await {
                    Ok(out) => out,
                    Err(_) => self.hand_back(job).await,
                }
            }
        }?;
        tracing::debug!(outcome = ?outcome, "job handled");
        Ok(JobReport {
            job: job.id,
            kind: job.kind.clone(),
            tenant: job_tenant(job),
            attempt: job.attempt,
            outcome,
        })
    }

    /// Returns an unfinished job to the queue with no delay (on shutdown).
    async fn hand_back(&self, job: &Job) -> Result<JobOutcome> {
        tracing::info!("worker shutting down: returning the current job");
        match self
            .jobs
            .nack(job, "worker shut down", Duration::ZERO)
            .await?
        {
            NackOutcome::Retried => Ok(JobOutcome::Returned),
            NackOutcome::DeadLettered => {
                let error = crate::error::Error::internal("out of attempts (worker shut down)");
                self.give_up(job, &error).await?;
                Ok(JobOutcome::DeadLettered)
            }
        }
    }
}
