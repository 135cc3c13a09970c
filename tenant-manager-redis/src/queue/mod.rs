//! [`RedisJobQueue`]: a durable at-least-once job queue on Redis Streams.

mod config;
mod prune;
mod reply;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tenant_manager_core::{
    Error, Job, JobId, JobQueue, NackOutcome, NewJob, QueueStats, Result, truncate_utf8,
    validate_consumer, validate_delay, validate_extension,
};
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::keys::QueueKeys;
use crate::pool::RedisPool;
use crate::scripts;
use crate::stream::oldest_entries;
pub use config::JobQueueConfig;
pub(crate) use config::millis;
use prune::PruneGate;
use reply::{Claim, dead_job, parse_claim, parse_receipt};

/// Longest error text kept with a job.
const MAX_ERROR_BYTES: usize = 4096;

/// A durable, at-least-once job queue on a Redis Stream with a consumer group.
///
/// - `enqueue` stores the job in a hash and appends its id to its tenant's lane, a list (one
///   script); a lane that was empty joins the back of the turns, the list of lanes holding
///   jobs. A job with a delay waits in the delayed sorted set instead.
/// - `dequeue` runs one script that moves due jobs from the delayed set to their lanes,
///   reclaims with `XAUTOCLAIM` an entry pending longer than the visibility timeout (its
///   consumer crashed), or else takes the oldest job of the lane whose turn it is (the lane
///   goes to the back of the turns while it still holds jobs: round robin over the tenants,
///   the fairness bound of the [`JobQueue`] contract) and delivers it through the stream with
///   `XADD` + `XREADGROUP`; each delivery increments the job's attempt counter. With nothing to
///   deliver it waits with `XREAD BLOCK` on a short signal stream, on a connection of the
///   blocking pool, waking at once for new jobs and at least every
///   [`JobQueueConfig::poll_interval`] for reclaimable or due ones.
/// - `release` hands a current delivery back without counting it (the attempt counter goes
///   back by one), to its lane or after a delay.
/// - Receipts name the stream entry and the attempt: `ack`/`nack` of a delivery that is no
///   longer current (reclaimed, retried, dead-lettered) does nothing.
/// - `extend` checks the receipt the same way and resets the idle time of the pending entry
///   (`XCLAIM ... IDLE ... JUSTID` to its current holder, in one script), so it is reclaimed
///   only once the extension has passed.
/// - `nack` schedules a retry after the delay, or moves the job to the dead-letter stream with
///   its last error once it has been delivered `max_attempts` times; a job reclaimed after its
///   last attempt is dead-lettered too.
/// - Consumers that are gone (crashed or replaced workers) are removed from the group: a
///   consumer idle longer than [`JobQueueConfig::effective_consumer_idle_timeout`] that holds
///   no pending entries is deleted by one script that checks and deletes atomically, so a
///   consumer that just received a job is never deleted. One still holding entries is kept
///   until the normal reclaim has moved them to a live consumer. `dequeue` runs this pass at
///   most once per [`JobQueueConfig::consumer_prune_interval`] in each process;
///   [`RedisJobQueue::prune_consumers`] runs it on demand. Deleting a live consumer with
///   nothing pending is harmless: it joins the group again with its next delivery.
///
/// The provisioning worker of tenant-manager-core runs on it unchanged.
#[derive(Debug, Clone)]
pub struct RedisJobQueue {
    pool: RedisPool,
    keys: QueueKeys,
    config: JobQueueConfig,
    prune_gate: Arc<PruneGate>,
}

impl RedisJobQueue {
    /// A queue on `pool`. Nothing is sent to Redis until first use; the consumer group is
    /// created by the first `dequeue` (from the start of the stream, so no job is missed).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad `config`.
    pub fn new(pool: &RedisPool, config: JobQueueConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            pool: pool.clone(),
            keys: pool.keys().queue(&config.name),
            config,
            prune_gate: Arc::new(PruneGate::new()),
        })
    }

    /// The settings.
    pub fn config(&self) -> &JobQueueConfig {
        &self.config
    }

    fn job_key(&self, id: JobId) -> String {
        format!("{}{id}", self.keys.job_prefix)
    }

    /// Removes from the consumer group every consumer idle for longer than `idle_longer_than`
    /// that holds no pending entries, and returns how many were removed.
    ///
    /// Check and delete run in one script, so a consumer that has just received a job is never
    /// removed, and a consumer holding jobs is never removed (its jobs would be lost from the
    /// pending list): its jobs are reclaimed by other consumers after the visibility timeout
    /// first, and a later call removes it. Removing a live consumer that happens to hold
    /// nothing is harmless: it joins the group again with its next delivery. Idle time is
    /// Redis's: the time since the consumer last read or claimed. A queue not used yet has
    /// nothing to prune.
    ///
    /// Work is bounded: each script run deletes at most 1000 consumers (it reads the list of
    /// consumers once); more runs follow until none is left to delete.
    ///
    /// `dequeue` runs the same pass with [`JobQueueConfig::effective_consumer_idle_timeout`]
    /// at most once per [`JobQueueConfig::consumer_prune_interval`].
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `idle_longer_than` unless it is between 1 ms and 365 days;
    /// [`Error::Unavailable`] when Redis cannot be reached.
    ///
    /// [`JobQueueConfig::effective_consumer_idle_timeout`]: JobQueueConfig::effective_consumer_idle_timeout
    /// [`JobQueueConfig::consumer_prune_interval`]: JobQueueConfig::consumer_prune_interval
    pub async fn prune_consumers(&self, idle_longer_than: Duration) -> Result<usize> {
        prune::prune_all(
            &self.pool,
            &self.keys.stream,
            &self.config.group,
            idle_longer_than,
        )
        .await
    }

    /// The automatic pass of `dequeue`: one batch, when this process's interval has passed.
    /// A failure is logged, never returned: it must not keep a worker from its jobs.
    async fn prune_if_due(&self) {
        let Some(interval) = self.config.consumer_prune_interval else {
            return;
        };
        if !self.prune_gate.take(interval) {
            return;
        }
        let threshold = self.config.effective_consumer_idle_timeout();
        let pruned =
            prune::prune_batch(&self.pool, &self.keys.stream, &self.config.group, threshold).await;
        if let Err(err) = pruned {
            tracing::warn!(error = %err, queue = %self.config.name, "pruning idle consumers failed");
        }
    }

    async fn claim(&self, consumer: &str) -> Result<Claim> {
        let reply: Vec<String> = self
            .pool
            .invoke(
                scripts::QUEUE_CLAIM
                    .key(&self.keys.stream)
                    .key(&self.keys.delayed)
                    .key(&self.keys.dead)
                    .key(&self.keys.reclaim_cursor)
                    .key(&self.keys.turns)
                    .key(&self.keys.ready_count)
                    .key(&self.keys.signal)
                    .arg(&self.config.group)
                    .arg(consumer)
                    .arg(millis(self.config.visibility_timeout))
                    .arg(&self.keys.job_prefix)
                    .arg(self.config.max_attempts)
                    .arg(self.config.dead_letter_max_len)
                    .arg(&self.keys.lane_prefix),
            )
            .await?;
        parse_claim(reply)
    }
}

#[async_trait]
impl JobQueue for RedisJobQueue {
    async fn enqueue(&self, job: NewJob) -> Result<JobId> {
        NewJob::new(&job.kind, job.tenant_id, serde_json::Value::Null)?;
        let payload = serde_json::to_string(&job.payload)
            .map_err(|e| Error::internal_with("job payload does not serialize", e))?;
        if payload.len() > self.config.max_payload_bytes {
            return Err(Error::invalid(
                "payload",
                "is larger than the queue accepts",
            ));
        }
        let delay = job.delay.unwrap_or_default();
        validate_delay(delay)?;
        let id = JobId::new();
        let enqueued_at = OffsetDateTime::now_utc().unix_timestamp_nanos();
        let _: i64 = self
            .pool
            .invoke(
                scripts::QUEUE_ENQUEUE
                    .key(self.job_key(id))
                    .key(&self.keys.delayed)
                    .key(&self.keys.turns)
                    .key(&self.keys.ready_count)
                    .key(&self.keys.signal)
                    .arg(id.to_string())
                    .arg(&job.kind)
                    .arg(job.tenant_id.map(|t| t.to_string()).unwrap_or_default())
                    .arg(payload)
                    .arg(enqueued_at.to_string())
                    .arg(&self.keys.job_prefix)
                    .arg(&self.keys.lane_prefix)
                    .arg(millis(delay)),
            )
            .await?;
        metrics::counter!("job_queue_enqueued_total").increment(1);
        Ok(id)
    }

    async fn dequeue(&self, consumer: &str, wait: Duration) -> Result<Option<Job>> {
        validate_consumer(consumer)?;
        let deadline = Instant::now() + wait;
        loop {
            self.prune_if_due().await;
            let (last_id, next_due) = match self.claim(consumer).await? {
                Claim::Job(job) => return Ok(Some(job)),
                Claim::Empty { last_id, next_due } => (last_id, next_due),
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let mut block = left
                .min(self.config.poll_interval)
                .min(self.config.visibility_timeout);
            if let Some(due) = next_due {
                block = block.min(due);
            }
            let block = block.max(Duration::from_millis(1));
            let _: redis::Value = self
                .pool
                .query_blocking(
                    redis::cmd("XREAD")
                        .arg("BLOCK")
                        .arg(millis(block))
                        .arg("COUNT")
                        .arg(1)
                        .arg("STREAMS")
                        .arg(&self.keys.signal)
                        .arg(&last_id),
                    block,
                )
                .await?;
        }
    }

    async fn ack(&self, job: &Job) -> Result<()> {
        let (entry, attempt) = parse_receipt(&job.receipt)?;
        let acked: i64 = self
            .pool
            .invoke(
                scripts::QUEUE_ACK
                    .key(&self.keys.stream)
                    .key(self.job_key(job.id))
                    .arg(&self.config.group)
                    .arg(entry)
                    .arg(attempt),
            )
            .await?;
        if acked == 1 {
            metrics::counter!("job_queue_acked_total").increment(1);
        }
        Ok(())
    }

    async fn nack(&self, job: &Job, error: &str, delay: Duration) -> Result<NackOutcome> {
        let (entry, attempt) = parse_receipt(&job.receipt)?;
        let outcome: i64 = self
            .pool
            .invoke(
                scripts::QUEUE_NACK
                    .key(&self.keys.stream)
                    .key(self.job_key(job.id))
                    .key(&self.keys.delayed)
                    .key(&self.keys.dead)
                    .key(&self.keys.turns)
                    .key(&self.keys.ready_count)
                    .key(&self.keys.signal)
                    .arg(&self.config.group)
                    .arg(entry)
                    .arg(attempt)
                    .arg(truncate_utf8(error, MAX_ERROR_BYTES))
                    .arg(millis(delay))
                    .arg(self.config.max_attempts)
                    .arg(job.id.to_string())
                    .arg(self.config.dead_letter_max_len)
                    .arg(&self.keys.job_prefix)
                    .arg(&self.keys.lane_prefix),
            )
            .await?;
        Ok(if outcome == 2 {
            metrics::counter!("job_queue_dead_lettered_total").increment(1);
            NackOutcome::DeadLettered
        } else {
            NackOutcome::Retried
        })
    }

    async fn release(&self, job: &Job, delay: Duration) -> Result<bool> {
        validate_delay(delay)?;
        let (entry, attempt) = parse_receipt(&job.receipt)?;
        let released: i64 = self
            .pool
            .invoke(
                scripts::QUEUE_RELEASE
                    .key(&self.keys.stream)
                    .key(self.job_key(job.id))
                    .key(&self.keys.delayed)
                    .key(&self.keys.turns)
                    .key(&self.keys.ready_count)
                    .key(&self.keys.signal)
                    .arg(&self.config.group)
                    .arg(entry)
                    .arg(attempt)
                    .arg(millis(delay))
                    .arg(job.id.to_string())
                    .arg(&self.keys.job_prefix)
                    .arg(&self.keys.lane_prefix),
            )
            .await?;
        Ok(released == 1)
    }

    async fn extend(&self, job: &Job, visibility: Duration) -> Result<bool> {
        validate_extension(visibility, self.config.visibility_timeout)?;
        let (entry, attempt) = parse_receipt(&job.receipt)?;
        // The claim script reclaims an entry idle for the visibility timeout: starting it at
        // `visibility_timeout - visibility` of idleness makes it reclaimable after `visibility`.
        let idle = self.config.visibility_timeout.saturating_sub(visibility);
        let extended: i64 = self
            .pool
            .invoke(
                scripts::QUEUE_EXTEND
                    .key(&self.keys.stream)
                    .key(self.job_key(job.id))
                    .arg(&self.config.group)
                    .arg(entry)
                    .arg(attempt)
                    .arg(millis(idle)),
            )
            .await?;
        Ok(extended == 1)
    }

    fn visibility_timeout(&self) -> Duration {
        self.config.visibility_timeout
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<Job>> {
        oldest_entries(&self.pool, &self.keys.dead, limit)
            .await?
            .iter()
            .map(|(entry, fields)| dead_job(entry, fields))
            .collect()
    }

    async fn stats(&self) -> Result<QueueStats> {
        let counts: Vec<u64> = self
            .pool
            .invoke(
                scripts::QUEUE_STATS
                    .key(&self.keys.stream)
                    .key(&self.keys.delayed)
                    .key(&self.keys.dead)
                    .key(&self.keys.ready_count)
                    .arg(&self.config.group),
            )
            .await?;
        let [ready, in_flight, dead] = counts[..] else {
            return Err(Error::internal(
                "unexpected reply of the queue stats script",
            ));
        };
        Ok(QueueStats::new(ready, in_flight, dead))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_validated_and_errors_are_truncated_on_char_boundaries() {
        assert!(JobQueueConfig::default().validate().is_ok());
        assert!(
            JobQueueConfig::default()
                .with_name("Bad Name")
                .validate()
                .is_err()
        );
        assert!(
            JobQueueConfig::default()
                .with_max_attempts(0)
                .validate()
                .is_err()
        );
        let config = JobQueueConfig::default();
        assert_eq!(
            config.effective_consumer_idle_timeout(),
            Duration::from_secs(3600)
        );
        assert_eq!(
            config
                .clone()
                .with_visibility_timeout(Duration::from_secs(600))
                .effective_consumer_idle_timeout(),
            Duration::from_secs(6000)
        );
        assert_eq!(
            config
                .clone()
                .with_consumer_idle_timeout(Duration::from_millis(50))
                .effective_consumer_idle_timeout(),
            Duration::from_millis(50)
        );
        for (bad, field) in [
            (
                config.clone().with_consumer_idle_timeout(Duration::ZERO),
                "queue.consumer_idle_timeout",
            ),
            (
                config.clone().with_consumer_prune_interval(Duration::ZERO),
                "queue.consumer_prune_interval",
            ),
        ] {
            assert_eq!(
                bad.validate().err().as_ref().and_then(Error::field),
                Some(field)
            );
        }
        assert!(config.with_consumer_prune_interval(None).validate().is_ok());
        assert_eq!(truncate_utf8("héllo", 2), "h");
        assert_eq!(truncate_utf8("héllo", 3), "hé");
        assert_eq!(truncate_utf8("abc", 10), "abc");
    }
}
