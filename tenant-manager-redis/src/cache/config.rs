//! [`TenantCacheConfig`]: the settings of a [`RedisTenantCache`](super::RedisTenantCache).

use std::time::Duration;

use tenant_manager_core::{Error, Result};

/// Settings of a [`RedisTenantCache`](super::RedisTenantCache).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TenantCacheConfig {
    /// Time to live of records in Redis.
    pub ttl: Duration,
    /// Time to live of local copies; bounds staleness if an invalidation is ever lost.
    pub local_ttl: Duration,
    /// Most tenants held locally.
    pub local_capacity: u64,
    /// Whether to keep local copies at all; without them every lookup is one Redis round trip.
    pub local_layer: bool,
    /// How often the subscriber pings its connection to notice a silent disconnection.
    pub ping_interval: Duration,
    /// Invalidations an [`InvalidationReceiver`](super::InvalidationReceiver) may fall behind
    /// by before it gets [`Invalidation::All`](super::Invalidation::All) in their place.
    pub invalidation_capacity: usize,
}

impl Default for TenantCacheConfig {
    /// 5 min in Redis, 60 s locally for up to 10,000 tenants, 1 s ping, receivers 1,024
    /// invalidations deep.
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(300),
            local_ttl: Duration::from_secs(60),
            local_capacity: 10_000,
            local_layer: true,
            ping_interval: Duration::from_secs(1),
            invalidation_capacity: 1_024,
        }
    }
}

impl TenantCacheConfig {
    /// Sets the Redis TTL.
    #[must_use]
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets the local TTL.
    #[must_use]
    pub fn with_local_ttl(mut self, ttl: Duration) -> Self {
        self.local_ttl = ttl;
        self
    }

    /// Sets the local capacity.
    #[must_use]
    pub fn with_local_capacity(mut self, capacity: u64) -> Self {
        self.local_capacity = capacity;
        self
    }

    /// Keeps (`true`, the default) or skips local copies.
    #[must_use]
    pub fn with_local_layer(mut self, enabled: bool) -> Self {
        self.local_layer = enabled;
        self
    }

    /// Sets the subscriber's ping interval.
    #[must_use]
    pub fn with_ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval;
        self
    }

    /// Sets how many invalidations a receiver may fall behind by.
    #[must_use]
    pub fn with_invalidation_capacity(mut self, capacity: usize) -> Self {
        self.invalidation_capacity = capacity;
        self
    }

    /// Checks every field.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the first bad field.
    pub fn validate(&self) -> Result<()> {
        let ms = Duration::from_millis(1);
        let day = Duration::from_secs(86_400);
        for (field, value) in [
            ("cache.ttl", self.ttl),
            ("cache.local_ttl", self.local_ttl),
            ("cache.ping_interval", self.ping_interval),
        ] {
            if value < ms || value > day {
                return Err(Error::invalid(field, "must be between 1 ms and 1 day"));
            }
        }
        if self.local_ttl > self.ttl {
            return Err(Error::invalid(
                "cache.local_ttl",
                "must not exceed cache.ttl",
            ));
        }
        if self.local_capacity == 0 {
            return Err(Error::invalid("cache.local_capacity", "must be at least 1"));
        }
        if !(1..=MAX_INVALIDATION_CAPACITY).contains(&self.invalidation_capacity) {
            return Err(Error::invalid(
                "cache.invalidation_capacity",
                "must be between 1 and 65536",
            ));
        }
        Ok(())
    }
}

/// The most invalidations a receiver may fall behind by (each is a few bytes).
const MAX_INVALIDATION_CAPACITY: usize = 65_536;
