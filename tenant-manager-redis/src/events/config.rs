//! [`EventStreamConfig`]: the settings of a [`RedisEventBus`](super::RedisEventBus) and its
//! consumer groups.

use std::time::Duration;

use tenant_manager_core::{Error, Result};

use crate::stream::{validate_at_least_one, validate_durations, validate_name};

/// Settings of a [`RedisEventBus`](super::RedisEventBus) and of the
/// [`RedisEventGroup`](super::RedisEventGroup)s reading it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EventStreamConfig {
    /// Stream name (1 to 64 of `[a-z0-9_.-]`); streams with different names are independent.
    pub name: String,
    /// Approximate number of events the stream keeps (`XADD MAXLEN ~`): how far a consumer
    /// group may fall behind, or stay away, before it misses events.
    pub max_len: u64,
    /// How long an event delivered to a group's consumer may stay unacknowledged before
    /// another consumer of the group takes it over (`XAUTOCLAIM`): the bound on how long the
    /// event of a crashed consumer waits.
    pub visibility_timeout: Duration,
    /// Deliveries after which an event still unacknowledged goes to the group's dead letters.
    pub max_deliveries: u32,
    /// Longest a waiting consumer or subscription blocks before it checks again (new events
    /// wake it at once); also the pause before a subscription reconnects.
    pub poll_interval: Duration,
    /// Approximate cap of each group's dead-letter stream.
    pub dead_letter_max_len: u64,
}

impl Default for EventStreamConfig {
    /// Stream `tenant-events` of about 100,000 events, 30 s visibility, 5 deliveries, 1 s
    /// poll, 10,000 dead letters per group.
    fn default() -> Self {
        Self {
            name: "tenant-events".to_owned(),
            max_len: 100_000,
            visibility_timeout: Duration::from_secs(30),
            max_deliveries: 5,
            poll_interval: Duration::from_secs(1),
            dead_letter_max_len: 10_000,
        }
    }
}

impl EventStreamConfig {
    /// Sets the stream name.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the approximate length the stream is trimmed to.
    #[must_use]
    pub fn with_max_len(mut self, max_len: u64) -> Self {
        self.max_len = max_len;
        self
    }

    /// Sets the visibility timeout of deliveries to a group.
    #[must_use]
    pub fn with_visibility_timeout(mut self, timeout: Duration) -> Self {
        self.visibility_timeout = timeout;
        self
    }

    /// Sets the deliveries after which an event is dead-lettered.
    #[must_use]
    pub fn with_max_deliveries(mut self, max: u32) -> Self {
        self.max_deliveries = max;
        self
    }

    /// Sets the poll interval.
    #[must_use]
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Sets the approximate cap of each group's dead-letter stream.
    #[must_use]
    pub fn with_dead_letter_max_len(mut self, max_len: u64) -> Self {
        self.dead_letter_max_len = max_len;
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the field (`events.name`, `events.max_len`, ...).
    pub fn validate(&self) -> Result<()> {
        validate_name("events.name", &self.name)?;
        validate_durations(&[
            ("events.visibility_timeout", self.visibility_timeout),
            ("events.poll_interval", self.poll_interval),
        ])?;
        if !(1..=1000).contains(&self.max_deliveries) {
            return Err(Error::invalid("events.max_deliveries", "must be 1 to 1000"));
        }
        validate_at_least_one("events.max_len", self.max_len)?;
        validate_at_least_one("events.dead_letter_max_len", self.dead_letter_max_len)
    }
}
