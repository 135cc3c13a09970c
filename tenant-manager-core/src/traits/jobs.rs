//! `JobQueue`: a durable queue for provisioning and other tenant jobs.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::domain::{JobId, TenantId};
use crate::error::{Error, Result};

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NewJob {
    /// Job kind, such as `provision_tenant` (1 to 64 of `[a-z0-9_.]`).
    pub kind: String,
    /// Tenant concerned, if any.
    pub tenant_id: Option<TenantId>,
    /// Kind-specific payload.
    pub payload: serde_json::Value,
    /// Delay before the job is first delivered (none: at once). See
    /// [`with_delay`](NewJob::with_delay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Duration>,
}

/// Longest delay a job may be enqueued with: 366 days.
pub const MAX_JOB_DELAY: Duration = Duration::from_secs(366 * 86_400);

impl NewJob {
    /// A job of `kind`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on field `kind`.
    pub fn new(
        kind: &str,
        tenant_id: Option<TenantId>,
        payload: serde_json::Value,
    ) -> Result<Self> {
        let ok = (1..=64).contains(&kind.len())
            && kind
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.');
        if !ok {
            return Err(Error::invalid("kind", "must be 1 to 64 of [a-z0-9_.]"));
        }
        Ok(Self {
            kind: kind.to_owned(),
            tenant_id,
            payload,
            delay: None,
        })
    }

    /// The same job, first delivered once `delay` has passed (a scheduled job).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on field `delay` when it is longer than [`MAX_JOB_DELAY`].
    pub fn with_delay(mut self, delay: Duration) -> Result<Self> {
        validate_delay(delay)?;
        self.delay = (!delay.is_zero()).then_some(delay);
        Ok(self)
    }
}

/// A job handed to a consumer. Ack it when done, nack it when it failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Job {
    /// Identity, stable across redeliveries.
    pub id: JobId,
    /// Kind.
    pub kind: String,
    /// Tenant concerned.
    pub tenant_id: Option<TenantId>,
    /// Payload.
    pub payload: serde_json::Value,
    /// Deliveries so far, counting this one (1 on first delivery).
    pub attempt: u32,
    /// Last error recorded by a nack.
    pub last_error: Option<String>,
    /// When it was first enqueued.
    #[serde(with = "time::serde::rfc3339")]
    pub enqueued_at: OffsetDateTime,
    /// Opaque delivery handle of the backend (stream entry id, lease token).
    pub receipt: String,
}

impl Job {
    /// A delivered job. Queue adapters call this.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: JobId,
        kind: String,
        tenant_id: Option<TenantId>,
        payload: serde_json::Value,
        attempt: u32,
        last_error: Option<String>,
        enqueued_at: OffsetDateTime,
        receipt: String,
    ) -> Self {
        Self {
            id,
            kind,
            tenant_id,
            payload,
            attempt,
            last_error,
            enqueued_at,
            receipt,
        }
    }
}

/// What a nack did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NackOutcome {
    /// The job will be delivered again after the delay.
    Retried,
    /// The job ran out of attempts and went to the dead-letter list.
    DeadLettered,
}

/// Queue depth.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct QueueStats {
    /// Waiting to be delivered (including delayed retries).
    pub ready: u64,
    /// Delivered and not yet acked.
    pub in_flight: u64,
    /// Dead-lettered.
    pub dead: u64,
}

impl QueueStats {
    /// Counts.
    pub fn new(ready: u64, in_flight: u64, dead: u64) -> Self {
        Self {
            ready,
            in_flight,
            dead,
        }
    }
}

/// A durable, at-least-once job queue.
///
/// # Contract
/// - Every enqueued job is delivered until it is acked or dead-lettered (at least once).
/// - A delivered job is invisible to other consumers until its visibility timeout passes;
///   then it is delivered again (a crashed consumer's jobs are reclaimed).
/// - `nack` schedules a retry after `delay`, or dead-letters the job once it has been
///   delivered the queue's maximum number of times, keeping `error` as its last error.
/// - `ack` and `nack` of a receipt that is no longer current (the job was reclaimed by
///   another consumer) do nothing and return `Ok`.
/// - `release` hands a current delivery back without counting it: the job is delivered again
///   after `delay` with the same attempt number, so holding a job (its tenant is suspended)
///   never dead-letters it. A stale receipt changes nothing and answers `false`.
/// - A job enqueued with a [`delay`](NewJob::delay) is first delivered once the delay has
///   passed.
/// - Tenants share the queue fairly. Jobs wait in one lane per tenant (jobs without a tenant
///   share one lane of their own), and new deliveries take the lanes in turn: with `T` lanes
///   holding ready jobs, a lane that has a ready job is served within the next `T` deliveries
///   of ready jobs, so the `k`-th job of a tenant's lane is delivered within `k * T` of them,
///   however many jobs another tenant has queued. Within a lane, jobs leave in the order they
///   became ready. Redeliveries of expired leases may come before ready jobs (they are not
///   counted in the bound).
/// - `extend` renews the lease of a current delivery, so a job that runs longer than the
///   visibility timeout is not handed to a second consumer while the first still works on it.
///   For a receipt that is no longer current (reclaimed, acked, nacked or dead-lettered) it
///   changes nothing and answers `false`: the lease is lost.
///
/// # Errors
/// `Unavailable` when the backend cannot be reached; `InvalidInput` for a bad consumer name,
/// or for an extension outside 1 ms to [`visibility_timeout`](JobQueue::visibility_timeout)
/// (field `visibility`).
#[async_trait]
pub trait JobQueue: std::fmt::Debug + Send + Sync + 'static {
    /// Adds a job.
    async fn enqueue(&self, job: NewJob) -> Result<JobId>;

    /// Takes the next job for `consumer`, waiting up to `wait` for one.
    async fn dequeue(&self, consumer: &str, wait: Duration) -> Result<Option<Job>>;

    /// Marks a job done.
    async fn ack(&self, job: &Job) -> Result<()>;

    /// Marks a job failed: retried after `delay` or dead-lettered.
    async fn nack(&self, job: &Job, error: &str, delay: Duration) -> Result<NackOutcome>;

    /// Renews the lease of `job`, a delivery this consumer still holds: it stays invisible to
    /// other consumers for `visibility` from now, instead of until its current lease runs out.
    /// Consumers of long jobs call it periodically (the provisioning worker does every third
    /// of the visibility timeout). A lease that ran out but whose job has not been delivered
    /// again yet can still be extended.
    ///
    /// Answers `true` when the lease was renewed and `false`, changing nothing, when the
    /// receipt is no longer current: the job was reclaimed by another consumer, acked, nacked
    /// or dead-lettered.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on field `visibility` when it is under 1 ms or longer than
    /// [`visibility_timeout`](JobQueue::visibility_timeout) (see [`validate_extension`]);
    /// `Unavailable` when the backend cannot be reached.
    async fn extend(&self, job: &Job, visibility: Duration) -> Result<bool>;

    /// Hands `job`, a delivery this consumer still holds, back to the queue without counting
    /// the delivery: it is delivered again once `delay` has passed, with the same
    /// [`attempt`](Job::attempt), and its `last_error` is unchanged. Workers call it to hold a
    /// job they must not run yet (its tenant is suspended).
    ///
    /// Answers `true` when the job was handed back and `false`, changing nothing, when the
    /// receipt is no longer current.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on field `delay` when it is longer than [`MAX_JOB_DELAY`];
    /// `Unavailable` when the backend cannot be reached.
    async fn release(&self, job: &Job, delay: Duration) -> Result<bool>;

    /// How long a delivery stays invisible to other consumers: the lease a `dequeue` grants,
    /// and the longest one `extend` grants.
    fn visibility_timeout(&self) -> Duration;

    /// Up to `limit` dead-lettered jobs, oldest first.
    async fn dead_letters(&self, limit: usize) -> Result<Vec<Job>>;

    /// Queue depth.
    async fn stats(&self) -> Result<QueueStats>;
}

/// Validates a consumer name: 1 to 64 of `[A-Za-z0-9_.:-]`.
///
/// # Errors
/// [`Error::InvalidInput`] on field `consumer`.
pub fn validate_consumer(consumer: &str) -> Result<()> {
    let ok = (1..=64).contains(&consumer.len())
        && consumer
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "consumer",
            "must be 1 to 64 of [A-Za-z0-9_.:-]",
        ))
    }
}

/// Validates the `delay` of a [`JobQueue::release`] or of a [`NewJob`]: at most
/// [`MAX_JOB_DELAY`].
///
/// # Errors
/// [`Error::InvalidInput`] on field `delay`.
pub fn validate_delay(delay: Duration) -> Result<()> {
    if delay > MAX_JOB_DELAY {
        return Err(Error::invalid("delay", "must be at most 366 days"));
    }
    Ok(())
}

/// Validates the `visibility` of a lease extension against the queue's `visibility_timeout`:
/// at least 1 ms and at most the visibility timeout.
///
/// # Errors
/// [`Error::InvalidInput`] on field `visibility`.
pub fn validate_extension(visibility: Duration, visibility_timeout: Duration) -> Result<()> {
    if visibility < Duration::from_millis(1) {
        return Err(Error::invalid("visibility", "must be at least 1 ms"));
    }
    if visibility > visibility_timeout {
        return Err(Error::invalid(
            "visibility",
            "must be at most the queue's visibility timeout",
        ));
    }
    Ok(())
}
