//! Settings of an [`InMemoryJobQueue`](super::InMemoryJobQueue).

use std::time::Duration;

use crate::error::{Error, Result};

/// Longest error message kept with a job, in bytes; longer ones are cut at a character boundary.
pub const MAX_JOB_ERROR_LEN: usize = 2048;

/// Settings of an [`InMemoryJobQueue`](super::InMemoryJobQueue).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct InMemoryJobQueueConfig {
    /// How long a delivered job stays invisible to other consumers (default 30 s).
    pub visibility_timeout: Duration,
    /// Deliveries after which a failing job is dead-lettered (default 5).
    pub max_attempts: u32,
    /// Most jobs held (ready, delayed and in flight); enqueue past it fails (default 100,000).
    pub max_jobs: usize,
    /// Most dead-lettered jobs kept; the oldest are dropped past it (default 10,000).
    pub max_dead_letters: usize,
}

impl Default for InMemoryJobQueueConfig {
    fn default() -> Self {
        Self {
            visibility_timeout: Duration::from_secs(30),
            max_attempts: 5,
            max_jobs: 100_000,
            max_dead_letters: 10_000,
        }
    }
}

impl InMemoryJobQueueConfig {
    /// Sets the visibility timeout.
    #[must_use]
    pub fn with_visibility_timeout(mut self, timeout: Duration) -> Self {
        self.visibility_timeout = timeout;
        self
    }

    /// Sets the deliveries after which a failing job is dead-lettered.
    #[must_use]
    pub fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// Sets the most jobs held.
    #[must_use]
    pub fn with_max_jobs(mut self, max_jobs: usize) -> Self {
        self.max_jobs = max_jobs;
        self
    }

    /// Sets the most dead-lettered jobs kept.
    #[must_use]
    pub fn with_max_dead_letters(mut self, max_dead_letters: usize) -> Self {
        self.max_dead_letters = max_dead_letters;
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the first field out of range: `visibility_timeout` (1 ms
    /// to 1 day), `max_attempts` (1 to 1,000), `max_jobs` or `max_dead_letters` (at least 1).
    pub fn validate(&self) -> Result<()> {
        if self.visibility_timeout < Duration::from_millis(1)
            || self.visibility_timeout > Duration::from_secs(86_400)
        {
            return Err(Error::invalid(
                "visibility_timeout",
                "must be between 1 ms and 1 day",
            ));
        }
        if !(1..=1_000).contains(&self.max_attempts) {
            return Err(Error::invalid("max_attempts", "must be 1 to 1000"));
        }
        if self.max_jobs == 0 {
            return Err(Error::invalid("max_jobs", "must be at least 1"));
        }
        if self.max_dead_letters == 0 {
            return Err(Error::invalid("max_dead_letters", "must be at least 1"));
        }
        Ok(())
    }
}
