//! [`HostJobWorker`]: takes host jobs from the queue and runs each inside its tenant's context.

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::config::HostWorkerConfig;
use super::context::{JobContext, JobFacts};
use super::jobs::HostJobs;
use crate::domain::{JobId, Tenant, TenantId, TenantStatus};
use crate::error::{Error, Result};
use crate::lifecycle::worker::{poll_loop, random_backoff, with_lease};
use crate::traits::{Job, MAX_JOB_DELAY, NackOutcome};

/// What the worker did with one host job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostJobOutcome {
    /// The handler succeeded. Acked.
    Completed,
    /// Its tenant is not `Active` (suspended, or not provisioned yet): handed back to run
    /// after the hold delay, without using up an attempt.
    Held,
    /// Its tenant is gone (deleting, deleted, purged) or the job names none: acked and
    /// dropped, never run.
    Dropped,
    /// The handler failed; the job comes back after `delay`.
    Retrying {
        /// Delay before the next delivery.
        delay: Duration,
    },
    /// The handler failed on the last attempt; the job is in the dead-letter list.
    DeadLettered,
    /// No handler is registered for its kind: handed back with the longest delay, so it ends
    /// in the dead-letter list for inspection.
    Rejected,
    /// The worker shut down before the job finished; handed back for another worker.
    Returned,
}

/// One host job the worker handled.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostJobReport {
    /// The job.
    pub job: JobId,
    /// Its kind.
    pub kind: String,
    /// Its tenant.
    pub tenant: Option<TenantId>,
    /// Which delivery this was (1 for the first).
    pub attempt: u32,
    /// What happened.
    pub outcome: HostJobOutcome,
}

/// Runs host jobs, one at a time, each inside its tenant's context.
///
/// For each job it reads the job's tenant from the registry, then:
/// - `Active`: runs the kind's handler with a [`JobContext`] of that tenant (its record, a
///   connection of that tenant's pool on demand) inside a span with `tenant_id`,
///   `tenant_slug`, `job_kind`, `job_id` and `attempt`, renewing the job's lease while it
///   runs; acks on success, retries with backoff on failure (a panicking handler counts as a
///   failure);
/// - `Suspended`, `Pending`, `Provisioning`, `Failed`: holds the job ([`JobQueue::release`]
///   with the hold delay, no attempt used);
/// - `Deleting`, `Deleted`, or no such tenant: acks and drops it, with a log line.
///
/// The tenant travels with the job from enqueue to run and nothing else chooses it: a job
/// cannot run for another tenant. Tenants share the worker fairly through the queue's lanes
/// (see the [`JobQueue`](crate::traits::JobQueue) contract). Run several workers (tasks or
/// processes) over one queue for more throughput; each job is leased to one of them.
///
/// [`JobQueue::release`]: crate::traits::JobQueue::release
pub struct HostJobWorker<C: Send + 'static> {
    jobs: HostJobs<C>,
    config: HostWorkerConfig,
}

impl<C: Send + 'static> fmt::Debug for HostJobWorker<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostJobWorker")
            .field("jobs", &self.jobs)
            .field("config", &self.config)
            .finish()
    }
}

impl<C: Send + 'static> HostJobs<C> {
    /// A worker running these jobs.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming a bad [`HostWorkerConfig`] field.
    pub fn worker(&self, config: HostWorkerConfig) -> Result<HostJobWorker<C>> {
        config.validate()?;
        Ok(HostJobWorker {
            jobs: self.clone(),
            config,
        })
    }
}

impl<C: Send + 'static> HostJobWorker<C> {
    /// The configuration.
    pub fn config(&self) -> &HostWorkerConfig {
        &self.config
    }

    /// Fires due schedules ([`HostJobs::fire_due`]) and runs jobs until `shutdown` is
    /// cancelled; schedules are looked at once per job or poll wait. On cancellation the current job may finish
    /// within the grace period; otherwise it is handed back to the queue with no delay.
    /// Queue and registry failures are logged and polled again after a backoff.
    pub async fn run(&self, shutdown: CancellationToken) {
        let shutdown = &shutdown;
        poll_loop(
            "host job worker",
            &self.config.worker,
            shutdown,
            move || async move {
                if let Err(e) = self.jobs.fire_due().await {
                    tracing::warn!(error = %e, "host job worker: firing schedules failed");
                }
                self.run_once(shutdown).await
            },
        )
        .await;
    }

    /// Waits up to the poll wait for one job and handles it. `None` when no job came.
    ///
    /// # Errors
    /// The queue's or registry's errors when the job could be neither finished nor handed
    /// back; the queue then redelivers it after its visibility timeout.
    pub async fn run_once(&self, shutdown: &CancellationToken) -> Result<Option<HostJobReport>> {
        let Some(job) = self
            .jobs
            .queue
            .dequeue(&self.config.worker.consumer, self.config.worker.poll_wait)
            .await?
        else {
            return Ok(None);
        };
        let outcome = self.handle(&job, shutdown).await?;
        metrics::counter!("host_jobs_handled_total", "outcome" => outcome_label(outcome))
            .increment(1);
        Ok(Some(HostJobReport {
            job: job.id,
            kind: job.kind.clone(),
            tenant: job.tenant_id,
            attempt: job.attempt,
            outcome,
        }))
    }

    async fn handle(&self, job: &Job, shutdown: &CancellationToken) -> Result<HostJobOutcome> {
        let queue = self.jobs.queue.as_ref();
        let Some(tenant_id) = job.tenant_id else {
            tracing::warn!(job = %job.id, kind = %job.kind, "host job without a tenant: dropped");
            queue.ack(job).await?;
            return Ok(HostJobOutcome::Dropped);
        };
        let Some(handler) = self.jobs.handlers.get(&job.kind).cloned() else {
            tracing::warn!(job = %job.id, kind = %job.kind, "no handler for this kind: rejected");
            queue
                .nack(job, "no handler is registered for this kind", MAX_JOB_DELAY)
                .await?;
            return Ok(HostJobOutcome::Rejected);
        };
        let tenant = match self.jobs.registry.get_tenant(tenant_id).await {
            Ok(tenant) => tenant,
            Err(Error::NotFound { .. }) => return self.drop_job(job, "tenant not found").await,
            Err(e) => return Err(e),
        };
        match tenant.status {
            TenantStatus::Active => {}
            TenantStatus::Deleting | TenantStatus::Deleted => {
                return self.drop_job(job, tenant.status.as_str()).await;
            }
            status => {
                tracing::debug!(job = %job.id, tenant_id = %tenant_id, status = %status.as_str(), "tenant not active: job held");
                queue.release(job, self.config.hold_delay).await?;
                return Ok(HostJobOutcome::Held);
            }
        }
        let span = tracing::info_span!(
            "host_job",
            tenant_id = %tenant.id,
            tenant_slug = %tenant.slug,
            job_kind = %job.kind,
            job_id = %job.id,
            attempt = job.attempt,
        );
        let work = self.run_handler(job, tenant, handler.as_ref(), span.clone());
        let work = with_lease(queue, job, work);
        tokio::pin!(work);
        let ran = tokio::select! {
            out = &mut work => out,
            () = shutdown.cancelled() => {
                match tokio::time::timeout(self.config.worker.shutdown_grace, &mut work).await {
                    Ok(out) => out,
                    Err(_) => {
                        tracing::info!(parent: &span, "worker shutting down: returning the current job");
                        return match queue.nack(job, "worker shut down", Duration::ZERO).await? {
                            NackOutcome::Retried => Ok(HostJobOutcome::Returned),
                            NackOutcome::DeadLettered => Ok(HostJobOutcome::DeadLettered),
                        };
                    }
                }
            }
        };
        match ran {
            Ok(()) => {
                queue.ack(job).await?;
                tracing::debug!(parent: &span, "host job completed");
                Ok(HostJobOutcome::Completed)
            }
            Err(e) => {
                let delay = random_backoff(
                    job.attempt,
                    self.config.worker.retry_base,
                    self.config.worker.retry_max,
                );
                tracing::warn!(parent: &span, error = %e, "host job failed");
                match queue.nack(job, &e.to_string(), delay).await? {
                    NackOutcome::Retried => Ok(HostJobOutcome::Retrying { delay }),
                    NackOutcome::DeadLettered => Ok(HostJobOutcome::DeadLettered),
                }
            }
        }
    }

    async fn run_handler(
        &self,
        job: &Job,
        tenant: Tenant,
        handler: &dyn super::JobHandler<C>,
        span: tracing::Span,
    ) -> Result<()> {
        let facts = JobFacts {
            job: job.id,
            kind: job.kind.clone(),
            attempt: job.attempt,
            enqueued_at: job.enqueued_at,
        };
        let ctx = JobContext::new(tenant, facts, self.jobs.pools.clone(), span.clone());
        let run = handler.run(ctx, job.payload.clone()).instrument(span);
        match AssertUnwindSafe(run).catch_unwind().await {
            Ok(result) => result,
            Err(_) => Err(Error::internal("the job handler panicked")),
        }
    }

    async fn drop_job(&self, job: &Job, why: &str) -> Result<HostJobOutcome> {
        tracing::info!(job = %job.id, kind = %job.kind, tenant_id = ?job.tenant_id, why, "tenant gone: host job dropped");
        self.jobs.queue.ack(job).await?;
        Ok(HostJobOutcome::Dropped)
    }
}

fn outcome_label(outcome: HostJobOutcome) -> &'static str {
    match outcome {
        HostJobOutcome::Completed => "completed",
        HostJobOutcome::Held => "held",
        HostJobOutcome::Dropped => "dropped",
        HostJobOutcome::Retrying { .. } => "retrying",
        HostJobOutcome::DeadLettered => "dead_lettered",
        HostJobOutcome::Rejected => "rejected",
        HostJobOutcome::Returned => "returned",
    }
}
