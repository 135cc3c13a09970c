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
    /// How it polls, retries and shuts down: the settings it shares with the provisioning
    /// worker (default consumer name `host-jobs-<random>`).
    pub worker: WorkerConfig,
    /// How long a job of a suspended (or not yet provisioned) tenant is held before it is
    /// looked at again (default 30 s). Holding never uses up an attempt.
    pub hold_delay: Duration,
}

impl Default for HostWorkerConfig {
    fn default() -> Self {
        Self {
            worker: WorkerConfig::default().with_consumer(format!(
                "host-jobs-{}",
                &Uuid::new_v4().simple().to_string()[..12]
            )),
            hold_delay: Duration::from_secs(30),
        }
    }
}

impl HostWorkerConfig {
    /// Sets the consumer name.
    #[must_use]
    pub fn with_consumer(mut self, consumer: impl Into<String>) -> Self {
        self.worker = self.worker.with_consumer(consumer);
        self
    }

    /// Sets how long one dequeue waits.
    #[must_use]
    pub fn with_poll_wait(mut self, wait: Duration) -> Self {
        self.worker = self.worker.with_poll_wait(wait);
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
        self.worker = self.worker.with_retry(base, max);
        self
    }

    /// Sets the shutdown grace period.
    #[must_use]
    pub fn with_shutdown_grace(mut self, grace: Duration) -> Self {
        self.worker = self.worker.with_shutdown_grace(grace);
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
        self.worker.validate()
    }
}
