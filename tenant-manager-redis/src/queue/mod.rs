//! [`RedisJobQueue`]: a durable at-least-once job queue on Redis Streams.

mod prune;
mod reply;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tenant_manager_core::{
    Error, Job, JobId, JobQueue, NackOutcome, NewJob, QueueStats, Result, validate_consumer,
    validate_extension,
};
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::keys::QueueKeys;
use crate::pool::RedisPool;
use crate::scripts;
use prune::PruneGate;
use reply::{Claim, dead_job, parse_claim, parse_receipt};

/// Longest error text kept with a job.
const MAX_ERROR_BYTES: usize = 4096;

/// Least default idle time before a consumer is pruned.
const DEFAULT_MIN_CONSUMER_IDLE: Duration = Duration::from_secs(3600);

/// Settings of a [`RedisJobQueue`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct JobQueueConfig {
    /// Queue name (1 to 64 of `[a-z0-9_.-]`); queues with different names are independent.
    pub name: String,
    /// Consumer group shared by the workers of this queue.
    pub group: String,
    /// How long a delivered job stays invisible before it is reclaimed for another consumer:
    /// the bound on how long a job of a crashed worker waits. Workers that run longer jobs
    /// renew their lease ([`JobQueue::extend`]), as the provisioning worker does every third
    /// of it.
    pub visibility_timeout: Duration,
    /// Deliveries after which a failing job is dead-lettered.
    pub max_attempts: u32,
    /// Longest an idle consumer waits before checking again for reclaimable or due jobs
    /// (new jobs wake it at once).
    pub poll_interval: Duration,
    /// Approximate cap of the dead-letter stream (oldest entries are trimmed).
    pub dead_letter_max_len: u64,
    /// Largest payload accepted, in bytes of JSON.
    pub max_payload_bytes: usize,
    /// Idle time after which a consumer that holds no pending entries is removed from the
    /// group (see [`RedisJobQueue::prune_consumers`]). `None`: 10 times the visibility
    /// timeout, at least 1 hour ([`JobQueueConfig::effective_consumer_idle_timeout`]).
    pub consumer_idle_timeout: Option<Duration>,
    /// How often `dequeue` runs the automatic prune pass in this process; `None` turns the
    /// automatic pass off (call [`RedisJobQueue::prune_consumers`] yourself).
    pub consumer_prune_interval: Option<Duration>,
}

impl Default for JobQueueConfig {
    /// Queue `jobs`, group `workers`, 30 s visibility, 5 attempts, 1 s poll, 10,000 dead
    /// letters, 1 MiB payloads; consumers idle for 1 hour with nothing pending are pruned,
    /// checked every 10 minutes.
    fn default() -> Self {
        Self {
            name: "jobs".to_owned(),
            group: "workers".to_owned(),
            visibility_timeout: Duration::from_secs(30),
            max_attempts: 5,
            poll_interval: Duration::from_secs(1),
            dead_letter_max_len: 10_000,
            max_payload_bytes: 1 << 20,
            consumer_idle_timeout: None,
            consumer_prune_interval: Some(Duration::from_secs(600)),
        }
    }
}

impl JobQueueConfig {
    /// Sets the queue name.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the consumer group.
    #[must_use]
    pub fn with_group(mut self, group: impl Into<String>) -> Self {
        self.group = group.into();
        self
    }

    /// Sets the visibility timeout.
    #[must_use]
    pub fn with_visibility_timeout(mut self, timeout: Duration) -> Self {
        self.visibility_timeout = timeout;
        self
    }

    /// Sets the maximum number of deliveries.
    #[must_use]
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Sets the poll interval of idle consumers.
    #[must_use]
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Sets the cap of the dead-letter stream.
    #[must_use]
    pub fn with_dead_letter_max_len(mut self, len: u64) -> Self {
        self.dead_letter_max_len = len;
        self
    }

    /// Sets the largest payload accepted.
    #[must_use]
    pub fn with_max_payload_bytes(mut self, bytes: usize) -> Self {
        self.max_payload_bytes = bytes;
        self
    }

    /// Sets the idle time after which a consumer with no pending entries is pruned.
    #[must_use]
    pub fn with_consumer_idle_timeout(mut self, timeout: Duration) -> Self {
        self.consumer_idle_timeout = Some(timeout);
        self
    }

    /// Sets how often `dequeue` runs the automatic prune pass; `None` turns it off.
    #[must_use]
    pub fn with_consumer_prune_interval(mut self, interval: impl Into<Option<Duration>>) -> Self {
        self.consumer_prune_interval = interval.into();
        self
    }

    /// The idle time after which a consumer with no pending entries is pruned: the configured
    /// one, else 10 times the visibility timeout but at least 1 hour.
    pub fn effective_consumer_idle_timeout(&self) -> Duration {
        self.consumer_idle_timeout.unwrap_or_else(|| {
            self.visibility_timeout
                .saturating_mul(10)
                .max(DEFAULT_MIN_CONSUMER_IDLE)
        })
    }

    /// Checks every field.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the first bad field.
    pub fn validate(&self) -> Result<()> {
        let name_ok = |s: &str| {
            (1..=64).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
        };
        if !name_ok(&self.name) {
            return Err(Error::invalid(
                "queue.name",
                "must be 1 to 64 of [a-z0-9_.-]",
            ));
        }
        if !name_ok(&self.group) {
            return Err(Error::invalid(
                "queue.group",
                "must be 1 to 64 of [a-z0-9_.-]",
            ));
        }
        for (field, value) in [
            ("queue.visibility_timeout", self.visibility_timeout),
            ("queue.poll_interval", self.poll_interval),
        ] {
            if value < Duration::from_millis(1) || value > Duration::from_secs(86_400) {
                return Err(Error::invalid(field, "must be between 1 ms and 1 day"));
            }
        }
        if let Some(timeout) = self.consumer_idle_timeout {
            prune::validate_idle_threshold("queue.consumer_idle_timeout", timeout)?;
        }
        if let Some(interval) = self.consumer_prune_interval
            && (interval < Duration::from_millis(1) || interval > Duration::from_secs(86_400))
        {
            return Err(Error::invalid(
                "queue.consumer_prune_interval",
                "must be between 1 ms and 1 day",
            ));
        }
        if !(1..=1000).contains(&self.max_attempts) {
            return Err(Error::invalid("queue.max_attempts", "must be 1 to 1000"));
        }
        if self.dead_letter_max_len == 0 {
            return Err(Error::invalid(
                "queue.dead_letter_max_len",
                "must be at least 1",
            ));
        }
        if self.max_payload_bytes == 0 {
            return Err(Error::invalid(
                "queue.max_payload_bytes",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// A durable, at-least-once job queue on a Redis Stream with a consumer group.
///
/// - `enqueue` stores the job in a hash and appends its id to the stream (one script).
/// - `dequeue` runs one script that moves due retries from a sorted set back to the stream,
///   reclaims with `XAUTOCLAIM` an entry pending longer than the visibility timeout (its
///   consumer crashed), or reads a new entry with `XREADGROUP`; each delivery increments the
///   job's attempt counter. With nothing to deliver it waits with `XREAD BLOCK` on a
///   connection of the blocking pool, waking at once for new jobs and at least every
///   [`JobQueueConfig::poll_interval`] for reclaimable or due ones.
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

    fn millis(duration: Duration) -> u64 {
        u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
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
                    .arg(&self.config.group)
                    .arg(consumer)
                    .arg(Self::millis(self.config.visibility_timeout))
                    .arg(&self.keys.job_prefix)
                    .arg(self.config.max_attempts)
                    .arg(self.config.dead_letter_max_len),
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
        let id = JobId::new();
        let enqueued_at = OffsetDateTime::now_utc().unix_timestamp_nanos();
        let _: i64 = self
            .pool
            .invoke(
                scripts::QUEUE_ENQUEUE
                    .key(&self.keys.stream)
                    .key(self.job_key(id))
                    .arg(id.to_string())
                    .arg(&job.kind)
                    .arg(job.tenant_id.map(|t| t.to_string()).unwrap_or_default())
                    .arg(payload)
                    .arg(enqueued_at.to_string()),
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
                        .arg(Self::millis(block))
                        .arg("COUNT")
                        .arg(1)
                        .arg("STREAMS")
                        .arg(&self.keys.stream)
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
                    .arg(&self.config.group)
                    .arg(entry)
                    .arg(attempt)
                    .arg(truncate(error, MAX_ERROR_BYTES))
                    .arg(Self::millis(delay))
                    .arg(self.config.max_attempts)
                    .arg(job.id.to_string())
                    .arg(self.config.dead_letter_max_len),
            )
            .await?;
        Ok(if outcome == 2 {
            metrics::counter!("job_queue_dead_lettered_total").increment(1);
            NackOutcome::DeadLettered
        } else {
            NackOutcome::Retried
        })
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
                    .arg(Self::millis(idle)),
            )
            .await?;
        Ok(extended == 1)
    }

    fn visibility_timeout(&self) -> Duration {
        self.config.visibility_timeout
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<Job>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let entries: Vec<(String, HashMap<String, String>)> = self
            .pool
            .query(
                redis::cmd("XRANGE")
                    .arg(&self.keys.dead)
                    .arg("-")
                    .arg("+")
                    .arg("COUNT")
                    .arg(limit),
            )
            .await?;
        entries
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

/// At most `max` bytes of `text`, cut at a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
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
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
