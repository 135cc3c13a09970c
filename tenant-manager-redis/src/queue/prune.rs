//! Pruning of consumers that are gone: names of crashed or replaced workers would otherwise
//! stay in the consumer group forever.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tenant_manager_core::{Error, Result};
use tokio::time::Instant;

use super::RedisJobQueue;
use crate::scripts;

/// Most consumers one script run deletes, which bounds the time Redis spends in it.
const PRUNE_BATCH: usize = 1000;

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

/// When the automatic pass of one process may run next: shared by the clones of a queue, taken
/// by one caller at a time without a lock.
#[derive(Debug)]
pub(super) struct PruneGate {
    origin: Instant,
    /// Milliseconds after `origin` from which the next pass may run.
    next_ms: AtomicU64,
}

impl PruneGate {
    /// A gate open at once.
    pub(super) fn new() -> Self {
        Self {
            origin: Instant::now(),
            next_ms: AtomicU64::new(0),
        }
    }

    /// Whether the caller may run a pass now; if so, the gate stays closed for `interval`.
    fn take(&self, interval: Duration) -> bool {
        let now = RedisJobQueue::millis(self.origin.elapsed());
        let next = self.next_ms.load(Ordering::Relaxed);
        now >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now.saturating_add(RedisJobQueue::millis(interval)),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }
}

impl RedisJobQueue {
    /// Removes from the consumer group every consumer idle for longer than `idle_longer_than`
    /// that holds no pending entries, and returns how many were removed.
    ///
    /// Check and delete run in one script, so a consumer that has just received a job is never
    /// removed, and a consumer holding jobs is never removed (its jobs would be lost from the
    /// pending list): its jobs are reclaimed by other consumers after the visibility timeout
    /// first, and a later call removes it. Removing a live consumer that happens to hold
    /// nothing is harmless: it joins the group again with its next delivery. Idle time is
    /// Redis's: the time since the consumer last read or claimed. A queue not used yet has
    /// nothing to prune.
    ///
    /// Work is bounded: each script run deletes at most 1000 consumers (it reads the list of
    /// consumers once); more runs follow until none is left to delete.
    ///
    /// `dequeue` runs the same pass with [`JobQueueConfig::effective_consumer_idle_timeout`]
    /// at most once per [`JobQueueConfig::consumer_prune_interval`].
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `idle_longer_than` unless it is between 1 ms and 365 days;
    /// [`Error::Unavailable`] when Redis cannot be reached.
    ///
    /// [`JobQueueConfig::effective_consumer_idle_timeout`]: super::JobQueueConfig::effective_consumer_idle_timeout
    /// [`JobQueueConfig::consumer_prune_interval`]: super::JobQueueConfig::consumer_prune_interval
    pub async fn prune_consumers(&self, idle_longer_than: Duration) -> Result<usize> {
        validate_idle_threshold("idle_longer_than", idle_longer_than)?;
        let mut total = 0;
        loop {
            let deleted = self.prune_batch(idle_longer_than).await?;
            total += deleted;
            if deleted < PRUNE_BATCH {
                return Ok(total);
            }
        }
    }

    /// The automatic pass of `dequeue`: one batch, when this process's interval has passed.
    /// A failure is logged, never returned: it must not keep a worker from its jobs.
    pub(super) async fn prune_if_due(&self) {
        let Some(interval) = self.config.consumer_prune_interval else {
            return;
        };
        if !self.prune_gate.take(interval) {
            return;
        }
        let threshold = self.config.effective_consumer_idle_timeout();
        if let Err(err) = self.prune_batch(threshold).await {
            tracing::warn!(error = %err, queue = %self.config.name, "pruning idle consumers failed");
        }
    }

    /// One run of the prune script; the number of consumers it deleted.
    async fn prune_batch(&self, idle_longer_than: Duration) -> Result<usize> {
        let deleted: usize = self
            .pool
            .invoke(
                scripts::QUEUE_PRUNE
                    .key(&self.keys.stream)
                    .arg(&self.config.group)
                    .arg(Self::millis(idle_longer_than))
                    .arg(PRUNE_BATCH),
            )
            .await?;
        if deleted > 0 {
            metrics::counter!("job_queue_consumers_pruned_total")
                .increment(u64::try_from(deleted).unwrap_or(u64::MAX));
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_opens_once_per_interval() {
        let gate = PruneGate::new();
        assert!(gate.take(Duration::from_secs(3600)));
        assert!(!gate.take(Duration::from_secs(3600)));
        let open = PruneGate::new();
        assert!(open.take(Duration::ZERO));
        assert!(open.take(Duration::ZERO));
    }

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
