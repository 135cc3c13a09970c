//! What the worker does with each kind of job.

use std::ops::ControlFlow;

use super::backoff::random_backoff;
use super::{JobOutcome, ProvisioningWorker};
use crate::domain::{Actor, Tenant, TenantId, TenantStatus};
use crate::error::{Error, Result};
use crate::lifecycle::jobs_kinds::{
    DEPROVISION_TENANT, MOVE_CLEANUP, MOVE_TENANT, PROVISION_TENANT, job_tenant,
};
use crate::lifecycle::ops::{DEPROVISIONING_TOTAL, PROVISIONING_TOTAL, failure_reason, record};
use crate::traits::{Job, NackOutcome};

impl ProvisioningWorker {
    /// Runs one job to an outcome, acking or nacking it.
    pub(super) async fn handle(&self, job: &Job) -> Result<JobOutcome> {
        let Some(tenant) = job_tenant(job) else {
            return self.reject(job, "job has no tenant id").await;
        };
        match job.kind.as_str() {
            PROVISION_TENANT => self.provision(job, tenant).await,
            DEPROVISION_TENANT => self.deprovision(job, tenant).await,
            MOVE_TENANT => match self.ops.run_move(tenant, Some(&self.jobs)).await {
                Ok(_) => self.finish(job, JobOutcome::Completed, "success").await,
                Err(e) => self.retry_or_fail(job, e).await,
            },
            MOVE_CLEANUP => self.move_cleanup(job, tenant).await,
            _ => self.reject(job, "unknown job kind").await,
        }
    }

    async fn provision(&self, job: &Job, id: TenantId) -> Result<JobOutcome> {
        let tenant = match self
            .tenant_to_work_on(job, id, TenantStatus::Active, "already_active")
            .await
        {
            ControlFlow::Continue(tenant) => tenant,
            ControlFlow::Break(outcome) => return outcome,
        };
        if !matches!(
            tenant.status,
            TenantStatus::Pending | TenantStatus::Provisioning
        ) {
            tracing::info!(tenant = %id, status = %tenant.status, "provision job no longer applies");
            return self.skip(job).await;
        }
        let provisioned = async {
            let tenant = self.ops.begin_provisioning(tenant).await?;
            self.ops.provision(&tenant).await
        }
        .await;
        match provisioned {
            Ok(_) => self.finish(job, JobOutcome::Completed, "success").await,
            Err(Error::InvalidTransition { from, .. }) => {
                tracing::info!(tenant = %id, status = %from, "tenant changed status meanwhile");
                self.skip(job).await
            }
            Err(e) => self.retry_or_fail(job, e).await,
        }
    }

    async fn deprovision(&self, job: &Job, id: TenantId) -> Result<JobOutcome> {
        let tenant = match self
            .tenant_to_work_on(job, id, TenantStatus::Deleted, "already_deleted")
            .await
        {
            ControlFlow::Continue(tenant) => tenant,
            ControlFlow::Break(outcome) => return outcome,
        };
        if tenant.status != TenantStatus::Deleting {
            // Never drop the storage of a tenant that is not being deleted.
            tracing::warn!(tenant = %id, status = %tenant.status, "deprovision job for a tenant not deleting");
            return self.skip(job).await;
        }
        match self.ops.finish_deletion(&tenant, Actor::System).await {
            Ok(_) => self.finish(job, JobOutcome::Completed, "success").await,
            Err(e) => self.retry_or_fail(job, e).await,
        }
    }

    /// Drops a moved tenant's old storage, or hands the job back until its grace is over.
    async fn move_cleanup(&self, job: &Job, id: TenantId) -> Result<JobOutcome> {
        match self.ops.finish_move(id).await {
            Ok((_, Some(left))) => {
                let left = left.min(crate::traits::MAX_JOB_DELAY);
                self.jobs.release(job, left).await?;
                Ok(JobOutcome::Retrying { delay: left })
            }
            Ok((Some(record), None)) if record.is_done(crate::domain::MoveStep::OldDropped) => {
                self.finish(job, JobOutcome::Completed, "success").await
            }
            Ok(_) => self.skip(job).await,
            Err(e) => self.retry_or_fail(job, e).await,
        }
    }

    /// The job's tenant while there is work left for the job. `Break` carries the job's
    /// outcome once it is settled: skipped when the tenant is gone, already done when the
    /// tenant is in `done` (counted as `done_result`), retried or failed when the registry
    /// cannot be read.
    async fn tenant_to_work_on(
        &self,
        job: &Job,
        id: TenantId,
        done: TenantStatus,
        done_result: &'static str,
    ) -> ControlFlow<Result<JobOutcome>, Tenant> {
        let tenant = match self.ops.registry.get_tenant(id).await {
            Ok(tenant) => tenant,
            Err(Error::NotFound { .. }) => return ControlFlow::Break(self.skip(job).await),
            Err(e) => return ControlFlow::Break(self.retry_or_fail(job, e).await),
        };
        if tenant.status == done {
            let outcome = self.finish(job, JobOutcome::AlreadyDone, done_result).await;
            return ControlFlow::Break(outcome);
        }
        ControlFlow::Continue(tenant)
    }

    /// Acks a job that no longer applies.
    async fn skip(&self, job: &Job) -> Result<JobOutcome> {
        self.finish(job, JobOutcome::Skipped, "skipped").await
    }

    /// Acks a job and counts its result.
    async fn finish(
        &self,
        job: &Job,
        outcome: JobOutcome,
        result: &'static str,
    ) -> Result<JobOutcome> {
        self.jobs.ack(job).await?;
        record(metric_of(job), result);
        Ok(outcome)
    }

    /// A retryable error goes back to the queue with a backoff (and gives up when the queue
    /// dead-letters it); any other error gives up at once.
    async fn retry_or_fail(&self, job: &Job, error: Error) -> Result<JobOutcome> {
        if error.is_retryable() {
            let delay = random_backoff(job.attempt, self.config.retry_base, self.config.retry_max);
            let outcome = self.jobs.nack(job, &failure_reason(&error), delay).await?;
            if outcome == NackOutcome::Retried {
                tracing::warn!(error = %error, delay = ?delay, "tenant job failed; will retry");
                record(metric_of(job), "retry");
                return Ok(JobOutcome::Retrying { delay });
            }
            self.give_up(job, &error).await?;
            return Ok(JobOutcome::DeadLettered);
        }
        self.give_up(job, &error).await?;
        self.jobs.ack(job).await?;
        Ok(JobOutcome::Failed)
    }

    /// Records a job that will not be retried: a provisioning tenant is marked `Failed` with
    /// the reason; a deleting tenant stays `Deleting` until it is deleted again.
    pub(super) async fn give_up(&self, job: &Job, error: &Error) -> Result<()> {
        record(metric_of(job), "failed");
        let Some(id) = job_tenant(job) else {
            return Ok(());
        };
        if job.kind != PROVISION_TENANT {
            tracing::error!(tenant = %id, error = %error, "tenant deprovisioning failed; it stays deleting");
            return Ok(());
        }
        match self.ops.mark_failed(id, error).await {
            Ok(_) => Ok(()),
            Err(Error::InvalidTransition { from, .. }) => {
                tracing::warn!(tenant = %id, status = %from, error = %error, "provisioning failed; tenant left as it is");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Hands back a job that can never succeed with the longest delay, so the queue
    /// dead-letters it after its attempts and it can be inspected.
    async fn reject(&self, job: &Job, why: &str) -> Result<JobOutcome> {
        tracing::error!(reason = why, "tenant job rejected");
        self.jobs.nack(job, why, self.config.retry_max).await?;
        Ok(JobOutcome::Rejected)
    }
}

fn metric_of(job: &Job) -> &'static str {
    if job.kind == DEPROVISION_TENANT {
        DEPROVISIONING_TOTAL
    } else {
        PROVISIONING_TOTAL
    }
}
