//! A byte budget over the artifacts one store value has written (the in-memory store's bound).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Mutex, MutexGuard};

use crate::error::Error;

/// Default budget of the in-memory store: 256 MiB.
pub(super) const DEFAULT_MAX_TOTAL_BYTES: u64 = 256 * 1024 * 1024;

/// The sizes of the artifacts written through one store value, and their bound.
#[derive(Debug)]
pub(super) struct Budget {
    max: u64,
    used: AtomicU64,
    /// Content size per key. Writers and deleters hold it while they change the store, so a
    /// size always matches the artifact in place.
    sizes: Mutex<HashMap<String, u64>>,
}

/// A writer's or deleter's hold on the budget.
#[derive(Debug)]
pub(super) struct Hold<'a> {
    budget: &'a Budget,
    sizes: MutexGuard<'a, HashMap<String, u64>>,
}

impl Budget {
    pub(super) fn new(max: u64) -> Self {
        Self {
            max,
            used: AtomicU64::new(0),
            sizes: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn max(&self) -> u64 {
        self.max
    }

    pub(super) fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// Holds the budget until the hold is dropped.
    pub(super) async fn hold(&self) -> Hold<'_> {
        Hold {
            budget: self,
            sizes: self.sizes.lock().await,
        }
    }

    /// The error of a write that does not fit.
    pub(super) fn full(&self) -> Error {
        Error::QuotaExceeded {
            quota: "backup_store_bytes".into(),
            limit: self.max,
            retry_after: Duration::ZERO,
        }
    }
}

impl Hold<'_> {
    /// How many bytes an artifact written under `key` may have: the room left, plus what the
    /// artifact it replaces frees.
    pub(super) fn allowance(&self, key: &str) -> u64 {
        let old = self.sizes.get(key).copied().unwrap_or(0);
        let others = self.budget.used().saturating_sub(old);
        self.budget.max.saturating_sub(others)
    }

    /// Records that the artifact of `key` now has `size` bytes (`None`: deleted).
    pub(super) fn set(&mut self, key: &str, size: Option<u64>) {
        let old = match size {
            Some(size) => self.sizes.insert(key.to_owned(), size),
            None => self.sizes.remove(key),
        };
        let used = self.budget.used() - old.unwrap_or(0) + size.unwrap_or(0);
        self.budget.used.store(used, Ordering::Release);
    }
}
