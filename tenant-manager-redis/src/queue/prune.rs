//! Pruning of consumers that are gone: names of crashed or replaced workers would otherwise
//! stay in the consumer group forever.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tenant_manager_core::Result;
use tokio::time::Instant;

use super::config::{millis, validate_idle_threshold};
use crate::pool::RedisPool;
use crate::scripts;

/// Most consumers one script run deletes, which bounds the time Redis spends in it.
const PRUNE_BATCH: usize = 1000;

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
    pub(super) fn take(&self, interval: Duration) -> bool {
        let now = millis(self.origin.elapsed());
        let next = self.next_ms.load(Ordering::Relaxed);
        now >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now.saturating_add(millis(interval)),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }
}

/// Deletes, batch after batch, every consumer of `group` idle longer than `idle_longer_than`
/// that holds no pending entries; the number deleted (see
/// [`RedisJobQueue::prune_consumers`](super::RedisJobQueue::prune_consumers)).
pub(super) async fn prune_all(
    pool: &RedisPool,
    stream: &str,
    group: &str,
    idle_longer_than: Duration,
) -> Result<usize> {
    validate_idle_threshold("idle_longer_than", idle_longer_than)?;
    let mut total = 0;
    loop {
        let deleted = prune_batch(pool, stream, group, idle_longer_than).await?;
        total += deleted;
        if deleted < PRUNE_BATCH {
            return Ok(total);
        }
    }
}

/// One run of the prune script; the number of consumers it deleted.
pub(super) async fn prune_batch(
    pool: &RedisPool,
    stream: &str,
    group: &str,
    idle_longer_than: Duration,
) -> Result<usize> {
    let deleted: usize = pool
        .invoke(
            scripts::QUEUE_PRUNE
                .key(stream)
                .arg(group)
                .arg(millis(idle_longer_than))
                .arg(PRUNE_BATCH),
        )
        .await?;
    if deleted > 0 {
        metrics::counter!("job_queue_consumers_pruned_total")
            .increment(u64::try_from(deleted).unwrap_or(u64::MAX));
    }
    Ok(deleted)
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
}
