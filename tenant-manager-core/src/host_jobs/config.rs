//! [`HostWorkerConfig`]: how a [`HostJobWorker`](super::HostJobWorker) polls, holds, retries
//! and shuts down.

use std::time::Duration;

use uuid::Uuid;

use crate::error::{Error, Result};
use crate::lifecycle::worker::WorkerConfig;

/// How a host job worker polls, holds jobs of tenants that are not active, retries and shuts
/// down.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostWorkerConfig {
    /// Consumer name at the queue; unique per worker (default `host-jobs-<random>`).
    pub consumer: String,
    /// How long one dequeue waits for a job (bounds how long shutdown waits while idle).
    pub poll_wait: Duration,
    /// How long a job of a suspended (or not yet provisioned) tenant is held before it is
    /// looked at again (default 30 s). Holding never uses up an attempt.
    pub hold_delay: Duration,
    /// Delay before the first retry of a failed job; doubles per attempt, with jitter.
    pub retry_base: Duration,
    /// Longest delay between retries.
    pub retry_max: Duration,
    /// On shutdown, how long the current job may still run before it is returned to the queue.
    pub shutdown_grace: Duration,
}

impl Default for HostWorkerConfig {
    fn default() -> Self {
        Self {
            consumer: format!("host-jobs-{}", &Uuid::new_v4().simple().to_string()[..12]),
            poll_wait: Duration::from_secs(2),
            hold_delay: Duration::from_secs(30),
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl HostWorkerConfig {
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

    /// Sets how long a job of a tenant that is not active is held.
    #[must_use]
    pub fn with_hold_delay(mut self, delay: Duration) -> Self {
        self.hold_delay = delay;
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
    /// [`Error::InvalidInput`] on `hold_delay` (1 ms to 1 day), or on the fields the
    /// provisioning worker's [`WorkerConfig::validate`] checks.
    pub fn validate(&self) -> Result<()> {
        if self.hold_delay < Duration::from_millis(1)
            || self.hold_delay > Duration::from_secs(86_400)
        {
            return Err(Error::invalid("hold_delay", "must be 1 ms to 1 day"));
        }
        WorkerConfig::default()
            .with_consumer(self.consumer.clone())
            .with_poll_wait(self.poll_wait)
            .with_retry(self.retry_base, self.retry_max)
            .with_shutdown_grace(self.shutdown_grace)
            .validate()
    }
}
