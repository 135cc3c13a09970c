//! The shared state of one pool: counters, LRU clock, closed flag and the last connect failure.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::Notify;

use super::PoolKey;
use crate::error::Error;

/// Milliseconds since the engine started: the LRU clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock(Instant);

impl Clock {
    pub(crate) fn new() -> Self {
        Self(Instant::now())
    }

    pub(crate) fn now_ms(self) -> u64 {
        self.ms_at(Instant::now())
    }

    /// `at` on this clock (saves reading the time again when the caller has it).
    pub(crate) fn ms_at(self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.0).as_millis()).unwrap_or(u64::MAX)
    }
}

/// Counters and flags of one pool, shared by the registry entry, the pool's manager and its
/// connections. All reads and writes are atomic; nothing here is held across an `.await`.
///
/// # Layout
/// A checkout and its return touch, of this struct, only the fields of its first cache line
/// (`key` to `failure`'s epochs, in this order: `repr(C)`, aligned to 64 bytes and checked at
/// compile time below). With thousands of pools checked out round-robin, each of those is a
/// cache miss per line touched; the fields a connect or a close needs come after.
#[derive(Debug)]
#[repr(C, align(64))]
pub(crate) struct PoolState {
    pub(crate) key: PoolKey,
    /// Acquires in progress plus checkouts alive: a pool with `active > 0` is never evicted.
    active: AtomicU32,
    /// Connections checked out (including those being reset).
    in_use: AtomicU32,
    /// Connects of this pool waiting for the global budget.
    budget_waiting: AtomicU32,
    closed: AtomicBool,
    /// Last checkout or return, on the engine's [`Clock`].
    last_used: AtomicU64,
    /// Its epochs are read by every checkout; its error and waiters are not.
    pub(crate) failure: FailureSlot,
    /// Connections of this pool that are established and not yet closed.
    open: AtomicU32,
    closing: Notify,
}

/// The fields a checkout touches (see [`PoolState`]) share one cache line.
const _: () = {
    use std::mem::{align_of, offset_of};
    assert!(align_of::<PoolState>() == 64);
    assert!(offset_of!(PoolState, failure) + offset_of!(FailureSlot, settled) + 8 <= 64);
    assert!(offset_of!(PoolState, failure) + offset_of!(FailureSlot, failed) + 8 <= 64);
};

impl PoolState {
    pub(crate) fn new(key: PoolKey, now_ms: u64) -> Self {
        Self {
            key,
            open: AtomicU32::new(0),
            in_use: AtomicU32::new(0),
            active: AtomicU32::new(0),
            budget_waiting: AtomicU32::new(0),
            last_used: AtomicU64::new(now_ms),
            closed: AtomicBool::new(false),
            closing: Notify::new(),
            failure: FailureSlot::default(),
        }
    }

    pub(crate) fn open(&self) -> u32 {
        self.open.load(Ordering::SeqCst)
    }

    pub(crate) fn in_use(&self) -> u32 {
        self.in_use.load(Ordering::SeqCst)
    }

    /// Open connections not checked out (a racy snapshot, good for choosing a victim).
    pub(crate) fn idle(&self) -> u32 {
        self.open().saturating_sub(self.in_use())
    }

    pub(crate) fn active(&self) -> u32 {
        self.active.load(Ordering::SeqCst)
    }

    pub(crate) fn enter(&self) {
        self.active.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn leave(&self) {
        self.active.fetch_sub(1, Ordering::SeqCst);
    }

    pub(crate) fn opened(&self) {
        self.open.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn closed_one(&self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }

    pub(crate) fn checked_out(&self) {
        self.in_use.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn checked_in(&self) {
        self.in_use.fetch_sub(1, Ordering::SeqCst);
    }

    pub(crate) fn budget_waiting(&self) -> u32 {
        self.budget_waiting.load(Ordering::SeqCst)
    }

    pub(crate) fn start_budget_wait(&self) {
        self.budget_waiting.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn end_budget_wait(&self) {
        self.budget_waiting.fetch_sub(1, Ordering::SeqCst);
    }

    pub(crate) fn last_used(&self) -> u64 {
        self.last_used.load(Ordering::Relaxed)
    }

    /// Records a use; skips the store when the clock has not moved, so a hot pool's cache
    /// line is not written on every checkout.
    pub(crate) fn touch(&self, now_ms: u64) {
        if self.last_used.load(Ordering::Relaxed) != now_ms {
            self.last_used.store(now_ms, Ordering::Relaxed);
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Marks the pool closed and wakes everyone waiting on it. Call after removing it from
    /// the registry, so a woken acquire finds the new pool.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.closing.notify_waiters();
    }

    /// A future that completes when the pool is closed. Enable it before checking
    /// [`is_closed`](Self::is_closed) to miss no wake-up.
    pub(crate) fn closing(&self) -> tokio::sync::futures::Notified<'_> {
        self.closing.notified()
    }
}

/// The outcome of failed connects of a pool, for the acquires waiting on it.
///
/// `bb8` runs connects in the background, reports their errors to nobody and wakes no
/// waiter when one fails. So a connect that the backend refused records its error here
/// (waiters then fail fast with the real cause instead of timing out), and every failed
/// connect, once `bb8` has given its slot back, bumps the `settled` epoch and wakes the
/// waiters (those with no error to report ask `bb8` again, which starts another connect).
#[derive(Debug, Default)]
#[repr(C)]
pub(crate) struct FailureSlot {
    // The epochs first: they sit on the checkout's cache line of [`PoolState`].
    failed: AtomicU64,
    settled: AtomicU64,
    last: Mutex<Option<Arc<Error>>>,
    notify: Notify,
}

/// Where a waiter stands in a pool's [`FailureSlot`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct FailureMark {
    failed: u64,
    settled: u64,
}

impl FailureSlot {
    pub(crate) fn mark(&self) -> FailureMark {
        FailureMark {
            failed: self.failed.load(Ordering::SeqCst),
            settled: self.settled.load(Ordering::SeqCst),
        }
    }

    /// Stores `err` (a connect the backend refused) and returns a copy for the caller.
    pub(crate) fn record(&self, err: Error) -> Error {
        let err = Arc::new(err);
        let copy = replicate(&err);
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(err);
        self.failed.fetch_add(1, Ordering::SeqCst);
        copy
    }

    /// A failed connect has been cleaned up by `bb8`: wake the waiters.
    pub(crate) fn settle(&self) {
        self.settled.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Whether a connect failed and settled since `mark`.
    pub(crate) fn settled_since(&self, mark: FailureMark) -> bool {
        self.settled.load(Ordering::SeqCst) != mark.settled
    }

    /// The error recorded since `mark`, if any.
    pub(crate) fn error_since(&self, mark: FailureMark) -> Option<Error> {
        if self.failed.load(Ordering::SeqCst) == mark.failed {
            return None;
        }
        let last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        last.as_ref().map(replicate)
    }

    pub(crate) fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }
}

/// An owned copy of a shared error: plain fields are cloned, a driver source is shared.
fn replicate(err: &Arc<Error>) -> Error {
    match &**err {
        Error::NotFound { entity, key } => Error::NotFound {
            entity: *entity,
            key: key.clone(),
        },
        Error::Conflict {
            entity,
            field,
            message,
        } => Error::Conflict {
            entity: *entity,
            field: field.clone(),
            message: message.clone(),
        },
        Error::InvalidInput { field, reason } => Error::InvalidInput {
            field: field.clone(),
            reason: reason.clone(),
        },
        Error::InvalidTransition { tenant, from, to } => Error::InvalidTransition {
            tenant: *tenant,
            from: *from,
            to: *to,
        },
        Error::Unauthenticated { reason } => Error::Unauthenticated {
            reason: reason.clone(),
        },
        Error::Forbidden { reason } => Error::Forbidden {
            reason: reason.clone(),
        },
        Error::Suspended { tenant } => Error::Suspended { tenant: *tenant },
        Error::Moving {
            tenant,
            retry_after,
        } => Error::Moving {
            tenant: *tenant,
            retry_after: *retry_after,
        },
        Error::NotReady { tenant, status } => Error::NotReady {
            tenant: *tenant,
            status: *status,
        },
        Error::QuotaExceeded {
            quota,
            limit,
            retry_after,
        } => Error::QuotaExceeded {
            quota: quota.clone(),
            limit: *limit,
            retry_after: *retry_after,
        },
        Error::PoolExhausted { waited } => Error::PoolExhausted { waited: *waited },
        Error::NoCapacity { reason } => Error::NoCapacity {
            reason: reason.clone(),
        },
        Error::Unavailable { backend, .. } => Error::Unavailable {
            backend: backend.clone(),
            source: Box::new(SharedCause(Arc::clone(err))),
        },
        Error::Internal { message, source } => Error::Internal {
            message: message.clone(),
            source: source
                .as_ref()
                .map(|_| Box::new(SharedCause(Arc::clone(err))) as crate::error::BoxError),
        },
    }
}

/// The source of a shared error, seen through the `Arc`: displays as the original source and
/// continues the chain from there.
#[derive(Debug)]
struct SharedCause(Arc<Error>);

impl std::fmt::Display for SharedCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match std::error::Error::source(&*self.0) {
            Some(source) => std::fmt::Display::fmt(source, f),
            None => std::fmt::Display::fmt(&*self.0, f),
        }
    }
}

impl std::error::Error for SharedCause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&*self.0).and_then(std::error::Error::source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_reported_once_settled_with_their_cause() {
        let slot = FailureSlot::default();
        let mark = slot.mark();
        assert!(slot.error_since(mark).is_none() && !slot.settled_since(mark));
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let copy = slot.record(Error::unavailable("postgres", io));
        assert_eq!(copy.code(), "backend_unavailable");
        assert!(!slot.settled_since(mark), "not before bb8 cleaned up");
        slot.settle();
        assert!(slot.settled_since(mark));
        let seen = slot.error_since(mark);
        assert_eq!(seen.as_ref().map(Error::code), Some("backend_unavailable"));
        let cause = seen
            .as_ref()
            .and_then(|e| std::error::Error::source(e))
            .map(ToString::to_string);
        assert_eq!(cause.as_deref(), Some("refused"));
        assert!(slot.error_since(slot.mark()).is_none());
        let invalid = slot.record(Error::invalid("placement.server", "unknown"));
        assert_eq!(invalid.field(), Some("placement.server"));
    }
}
