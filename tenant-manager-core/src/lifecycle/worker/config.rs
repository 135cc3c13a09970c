//! Configuration of [`ProvisioningWorker`](super::ProvisioningWorker).

use std::time::Duration;

use uuid::Uuid;

use crate::error::{Error, Result};
use crate::traits::validate_consumer;

/// How a provisioning worker polls, retries and shuts down.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerConfig {
    /// Consumer name at the queue; unique per worker (default `provisioner-<random>`).
    pub consumer: String,
    /// How long one dequeue waits for a job (bounds how long shutdown waits while idle).
    pub poll_wait: Duration,
    /// Delay before the first retry; doubles per attempt, with jitter.
    pub retry_base: Duration,
    /// Longest delay between retries.
    pub retry_max: Duration,
    /// On shutdown, how long the current job may still run before it is returned to the queue.
    pub shutdown_grace: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            consumer: format!("provisioner-{}", &Uuid::new_v4().simple().to_string()[..12]),
            poll_wait: Duration::from_secs(2),
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl WorkerConfig {
    /// Sets the consumer name.
    #[must_use]
    pub fn with_consumer(mut self, consumer: impl Into<String>) -> Self {
        self.consumer = consumer.into();
        self
    }

    /// Sets how long one dequeue waits.
    #[must_use]
    pub fn with_poll_wait(mut self, wait: Duration) -> Self {
        self.poll_wait = wait;
        self
    }

    /// Sets the retry delays: the first one and the cap.
    #[must_use]
    pub fn with_retry(mut self, base: Duration, max: Duration) -> Self {
        self.retry_base = base;
        self.retry_max = max;
        self
    }

    /// Sets the shutdown grace period.
    #[must_use]
    pub fn with_shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Checks every field.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `consumer`, `poll_wait` (1 ms to 60 s), `retry_base`
    /// (above zero, at most `retry_max`), `retry_max` (at most a day) or `shutdown_grace`
    /// (at most 10 minutes).
    pub fn validate(&self) -> Result<()> {
        validate_consumer(&self.consumer)?;
        if self.poll_wait < Duration::from_millis(1) || self.poll_wait > Duration::from_secs(60) {
            return Err(Error::invalid("poll_wait", "must be 1 ms to 60 s"));
        }
        if self.retry_max > Duration::from_secs(24 * 3600) {
            return Err(Error::invalid("retry_max", "must be at most a day"));
        }
        if self.retry_base.is_zero() || self.retry_base > self.retry_max {
            return Err(Error::invalid(
                "retry_base",
                "must be above zero and at most retry_max",
            ));
        }
        if self.shutdown_grace > Duration::from_secs(600) {
            return Err(Error::invalid(
                "shutdown_grace",
                "must be at most 10 minutes",
            ));
        }
        Ok(())
    }
}
