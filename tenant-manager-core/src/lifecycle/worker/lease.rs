//! Keeps the lease of the job being worked on, so a job that runs longer than the queue's
//! visibility timeout is not handed to a second worker meanwhile.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use crate::traits::{Job, JobQueue};

/// Counter of leases lost while their job was still running: the queue may have delivered
/// the job to another worker.
pub(crate) const JOB_LEASES_LOST_TOTAL: &str = "tenant_job_leases_lost_total";

/// Shortest pause between two renewals, whatever the queue's visibility timeout.
const MIN_RENEWAL_PERIOD: Duration = Duration::from_millis(1);

/// Runs `work` while renewing `job`'s lease at `jobs` every third of the queue's visibility
/// timeout, each renewal for a whole visibility timeout.
///
/// The renewals run inside the returned future, next to `work`, and stop as soon as `work`
/// finishes (or the future is dropped): they cannot outlive the job.
pub(crate) async fn with_lease<F: Future>(jobs: &dyn JobQueue, job: &Job, work: F) -> F::Output {
    tokio::select! {
        biased;
        out = work => out,
        never = keep_lease(jobs, job) => match never {},
    }
}

/// Renews the lease until it is lost (then logs a warning, counts it and idles) or the backend
/// refuses the extension for good; a backend that is unavailable is tried again next period.
async fn keep_lease(jobs: &dyn JobQueue, job: &Job) -> Infallible {
    let lease = jobs.visibility_timeout();
    let period = (lease / 3).max(MIN_RENEWAL_PERIOD);
    loop {
        tokio::time::sleep(period).await;
        match jobs.extend(job, lease).await {
            Ok(true) => tracing::trace!(lease = ?lease, "job lease renewed"),
            Ok(false) => {
                tracing::warn!(
                    "lost the lease of the running job: the queue may deliver it to another worker"
                );
                metrics::counter!(JOB_LEASES_LOST_TOTAL).increment(1);
                break;
            }
            Err(e) if e.is_retryable() => {
                tracing::warn!(error = %e, "could not renew the job lease; trying again");
            }
            Err(e) => {
                tracing::warn!(error = %e, "the queue refused to renew the job lease; giving up");
                break;
            }
        }
    }
    std::future::pending().await
}

#[cfg(test)]
mod tests {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    use super::*;
    use crate::memory::{InMemoryJobQueue, InMemoryJobQueueConfig};
    use crate::traits::NewJob;

    /// Renewals come every third of it: two thirds of the lease stay in hand between them.
    const VISIBILITY: Duration = Duration::from_millis(500);

    fn queue() -> InMemoryJobQueue {
        let config = InMemoryJobQueueConfig::default().with_visibility_timeout(VISIBILITY);
        InMemoryJobQueue::new(config).unwrap_or_else(|e| panic!("{e}"))
    }

    async fn held_job(q: &InMemoryJobQueue) -> Job {
        let new = NewJob::new("test.lease", None, serde_json::json!({}))
            .unwrap_or_else(|e| panic!("{e}"));
        q.enqueue(new).await.unwrap_or_else(|e| panic!("{e}"));
        q.dequeue("holder", Duration::ZERO)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("a job is ready"))
    }

    async fn taken_by_other(q: &InMemoryJobQueue, wait: Duration) -> Option<Job> {
        q.dequeue("other", wait)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn the_lease_is_kept_while_work_runs_and_released_with_it() {
        let q = queue();
        let job = held_job(&q).await;
        let stolen = with_lease(&q, &job, taken_by_other(&q, VISIBILITY * 2)).await;
        assert!(
            stolen.is_none(),
            "kept from other consumers while the work ran"
        );
        // The renewals stopped with the work: the lease runs out and the job comes back.
        let again = taken_by_other(&q, VISIBILITY * 10).await;
        assert_eq!(again.map(|j| (j.id, j.attempt)), Some((job.id, 2)));
    }

    #[test]
    fn a_lost_lease_is_counted_once_and_the_work_goes_on() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let out = metrics::with_local_recorder(&recorder, || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("{e}"));
            runtime.block_on(async {
                let q = queue();
                let job = held_job(&q).await;
                q.ack(&job).await.unwrap_or_else(|e| panic!("{e}"));
                with_lease(&q, &job, async {
                    tokio::time::sleep(VISIBILITY * 2).await;
                    "finished"
                })
                .await
            })
        });
        assert_eq!(out, "finished");
        let lost = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .find_map(|(key, _, _, value)| {
                match (key.key().name() == JOB_LEASES_LOST_TOTAL, value) {
                    (true, DebugValue::Counter(n)) => Some(n),
                    _ => None,
                }
            });
        assert_eq!(lost, Some(1), "counted once; the renewals stopped");
    }
}
