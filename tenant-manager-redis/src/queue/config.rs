//! [`JobQueueConfig`]: the settings of a [`RedisJobQueue`](super::RedisJobQueue), and the
//! duration checks and conversions the queue shares.

use std::time::Duration;

use tenant_manager_core::{Error, Result};

use crate::stream::{validate_at_least_one, validate_durations, validate_name};

/// Least default idle time before a consumer is pruned.
const DEFAULT_MIN_CONSUMER_IDLE: Duration = Duration::from_secs(3600);

/// Settings of a [`RedisJobQueue`](super::RedisJobQueue).
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
    ///
    /// [`JobQueue::extend`]: tenant_manager_core::JobQueue::extend
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
    ///
    /// [`RedisJobQueue::prune_consumers`]: super::RedisJobQueue::prune_consumers
    pub consumer_idle_timeout: Option<Duration>,
    /// How often `dequeue` runs the automatic prune pass in this process; `None` turns the
    /// automatic pass off (call [`RedisJobQueue::prune_consumers`] yourself).
    ///
    /// [`RedisJobQueue::prune_consumers`]: super::RedisJobQueue::prune_consumers
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
        validate_name("queue.name", &self.name)?;
        validate_name("queue.group", &self.group)?;
        validate_durations(&[
            ("queue.visibility_timeout", self.visibility_timeout),
            ("queue.poll_interval", self.poll_interval),
        ])?;
        if let Some(timeout) = self.consumer_idle_timeout {
            validate_idle_threshold("queue.consumer_idle_timeout", timeout)?;
        }
        if let Some(interval) = self.consumer_prune_interval {
            validate_durations(&[("queue.consumer_prune_interval", interval)])?;
        }
        if !(1..=1000).contains(&self.max_attempts) {
            return Err(Error::invalid("queue.max_attempts", "must be 1 to 1000"));
        }
        validate_at_least_one("queue.dead_letter_max_len", self.dead_letter_max_len)?;
        if self.max_payload_bytes == 0 {
            return Err(Error::invalid(
                "queue.max_payload_bytes",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// Longest idle threshold accepted.
const MAX_IDLE_THRESHOLD: Duration = Duration::from_secs(365 * 86_400);

/// Checks an idle threshold: between 1 ms and 365 days.
///
/// # Errors
/// [`Error::InvalidInput`] on `field` when out of range.
pub(super) fn validate_idle_threshold(field: &'static str, threshold: Duration) -> Result<()> {
    if threshold < Duration::from_millis(1) || threshold > MAX_IDLE_THRESHOLD {
        return Err(Error::invalid(field, "must be between 1 ms and 365 days"));
    }
    Ok(())
}

/// `duration` in whole milliseconds, saturating.
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_thresholds_are_bounded() {
        assert!(validate_idle_threshold("t", Duration::from_millis(50)).is_ok());
        assert_eq!(
            validate_idle_threshold("t", Duration::ZERO)
                .err()
                .and_then(|e| e.field().map(str::to_owned)),
            Some("t".to_owned())
        );
        assert!(validate_idle_threshold("t", MAX_IDLE_THRESHOLD * 2).is_err());
    }
}
