//! Invalidations as a host observes them: the subscriber task publishes every invalidation it
//! applies on a bounded broadcast channel; [`InvalidationReceiver`] reads it and turns a
//! receiver that fell behind into [`Invalidation::All`].

use tenant_manager_core::TenantId;
use tokio::sync::broadcast::{self, error::RecvError};

/// An invalidation the subscriber applied, from this instance or another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Invalidation {
    /// This tenant's record changed (suspended, resumed, deleted, updated).
    Tenant(TenantId),
    /// Any tenant may have changed: a bulk invalidation, an unreadable message, a
    /// (re)subscription after which earlier messages may have been missed, or a receiver that
    /// fell behind. Re-check every tenant you hold state of.
    All,
}

/// The sending side, held by the cache and its subscriber task.
#[derive(Debug, Clone)]
pub(crate) struct Feed(broadcast::Sender<Invalidation>);

impl Feed {
    /// A feed keeping at most `capacity` invalidations per receiver that has not read them.
    pub(crate) fn new(capacity: usize) -> Self {
        Self(broadcast::channel(capacity).0)
    }

    /// Hands `invalidation` to every receiver; nothing happens without receivers.
    pub(crate) fn send(&self, invalidation: Invalidation) {
        // An error only means that no receiver exists.
        let _ = self.0.send(invalidation);
    }

    /// A receiver of the invalidations sent from now on.
    pub(crate) fn subscribe(&self) -> InvalidationReceiver {
        InvalidationReceiver(self.0.subscribe())
    }
}

/// Receives the invalidations one [`RedisTenantCache`](super::RedisTenantCache) applies, from
/// [`RedisTenantCache::subscribe_invalidations`](super::RedisTenantCache::subscribe_invalidations).
///
/// Bounded: a receiver that falls more than the configured capacity behind loses the oldest
/// invalidations and gets one [`Invalidation::All`] in their place, so nothing is ever missed
/// silently and memory stays bounded however slow the reader.
#[derive(Debug)]
pub struct InvalidationReceiver(broadcast::Receiver<Invalidation>);

impl InvalidationReceiver {
    /// The next invalidation; `None` once every clone of the cache is dropped.
    ///
    /// Cancel safe: dropping the future loses no invalidation.
    pub async fn recv(&mut self) -> Option<Invalidation> {
        match self.0.recv().await {
            Ok(invalidation) => Some(invalidation),
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "invalidation receiver fell behind; re-check everything"
                );
                Some(Invalidation::All)
            }
            Err(RecvError::Closed) => None,
        }
    }
}
