//! The settings of moves and the mover, as the life-cycle operations hold them (below both
//! the operations and the step machine of [`moves`](super::moves)).

use std::sync::Arc;
use std::time::Duration;

use crate::traits::TenantMover;

/// How moves pause, drain and keep old storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MoveConfig {
    /// How long after the pause writes in flight may take to end before the copy starts.
    /// Default 5 s.
    pub drain: Duration,
    /// How long the old storage is kept after writes resume. Default 1 hour.
    pub grace: Duration,
    /// The `Retry-After` of writes refused while a tenant moves. Default 5 s.
    pub retry_after: Duration,
}

impl Default for MoveConfig {
    fn default() -> Self {
        Self {
            drain: Duration::from_secs(5),
            grace: Duration::from_secs(3600),
            retry_after: Duration::from_secs(5),
        }
    }
}

impl MoveConfig {
    /// Sets the drain wait.
    #[must_use]
    pub fn with_drain(mut self, drain: Duration) -> Self {
        self.drain = drain;
        self
    }

    /// Sets the grace period of the old storage.
    #[must_use]
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Sets the `Retry-After` of refused writes.
    #[must_use]
    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = retry_after;
        self
    }
}

/// The mover and its settings, as the life-cycle operations hold them.
#[derive(Debug, Clone)]
pub(crate) struct Moves {
    pub(crate) mover: Arc<dyn TenantMover>,
    pub(crate) config: MoveConfig,
}
