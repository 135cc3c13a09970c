//! Fail-fast state of a pool: after a failed connect, calls are refused at once while one
//! background probe at a time tries to reconnect.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::RedisError;

/// Connect outcomes of one pool, shared by its connection manager and its callers.
#[derive(Debug)]
pub(crate) struct Health {
    epoch: Instant,
    /// Milliseconds since `epoch` (plus one) of the failure that made the pool unhealthy;
    /// zero while healthy.
    down_since: AtomicU64,
    /// Milliseconds since `epoch` of the last probe started while unhealthy.
    last_probe: AtomicU64,
    /// The last connect error, kept as the source of `Unavailable` errors. Written only when a
    /// connect fails and read only when a call is refused: never on the healthy path.
    last_error: Mutex<Option<RedisError>>,
    /// Advanced whenever a connection to the server is seen to drop: every connection opened
    /// before may be dead too (the server restarted, failed over or the network was cut).
    generation: AtomicU64,
}

impl Health {
    pub(crate) fn new() -> Self {
        Self {
            epoch: Instant::now(),
            down_since: AtomicU64::new(0),
            last_probe: AtomicU64::new(0),
            last_error: Mutex::new(None),
            generation: AtomicU64::new(0),
        }
    }

    /// The current connection generation; a connection opened under an older one is stale.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Makes every connection opened so far stale: it is discarded at its next checkout
    /// instead of failing a command.
    pub(crate) fn connections_lost(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Records a failed connect.
    pub(crate) fn record_failure(&self, err: &RedisError) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(err.clone());
        }
        let now = self.now_ms().saturating_add(1);
        let _ = self
            .down_since
            .compare_exchange(0, now, Ordering::AcqRel, Ordering::Acquire);
        self.last_probe.store(now, Ordering::Release);
    }

    /// Records a successful connect.
    pub(crate) fn record_success(&self) {
        if self.down_since.load(Ordering::Acquire) != 0 {
            self.down_since.store(0, Ordering::Release);
            tracing::info!("redis reachable again");
        }
    }

    /// Whether calls should be refused now.
    pub(crate) fn is_down(&self) -> bool {
        self.down_since.load(Ordering::Acquire) != 0
    }

    /// While down: whether this caller should start the next probe (at most one per `interval`).
    pub(crate) fn claim_probe(&self, interval: Duration) -> bool {
        let now = self.now_ms();
        let last = self.last_probe.load(Ordering::Acquire);
        let interval = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
        now.saturating_sub(last) >= interval
            && self
                .last_probe
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// The last connect error.
    pub(crate) fn last_error(&self) -> Option<RedisError> {
        self.last_error.lock().ok().and_then(|last| last.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_makes_the_pool_down_until_a_success() {
        let health = Health::new();
        assert!(!health.is_down());
        let err = RedisError::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused",
        ));
        health.record_failure(&err);
        assert!(health.is_down());
        assert!(health.last_error().is_some());
        // A probe was just recorded with the failure: the next one waits for the interval.
        assert!(!health.claim_probe(Duration::from_secs(3600)));
        assert!(health.claim_probe(Duration::ZERO));
        health.record_success();
        assert!(!health.is_down());
    }

    #[test]
    fn a_lost_connection_advances_the_generation() {
        let health = Health::new();
        let before = health.generation();
        health.connections_lost();
        assert_eq!(health.generation(), before + 1);
    }
}
