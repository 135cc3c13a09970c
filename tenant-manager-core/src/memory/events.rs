//! `InMemoryEventBus`: tenant events fanned out to the subscriptions of one process.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::domain::TenantEvent;
use crate::error::{Error, Result};
use crate::traits::{EventBus, EventStream};

/// Events a subscription may fall behind by before it skips the oldest ones.
pub const DEFAULT_EVENT_BUFFER: usize = 1024;

/// Counter of events a lagging subscription skipped.
pub(crate) const LAGGED_TOTAL: &str = "tenant_events_lagged_total";

/// An [`EventBus`] for one process, over a [`tokio::sync::broadcast`] channel.
///
/// Publishing never waits: a subscription that falls more than `buffer` events behind skips
/// the oldest it missed (counted as `tenant_events_lagged_total`). With no subscription an
/// event goes nowhere. Clones share the same bus; its streams end when every clone is dropped.
#[derive(Debug, Clone)]
pub struct InMemoryEventBus {
    sender: Arc<broadcast::Sender<TenantEvent>>,
}

impl Default for InMemoryEventBus {
    fn default() -> Self {
        Self {
            sender: Arc::new(broadcast::Sender::new(DEFAULT_EVENT_BUFFER)),
        }
    }
}

impl InMemoryEventBus {
    /// A bus whose subscriptions may fall `buffer` events behind (1 to 1,000,000).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on field `buffer`.
    pub fn with_buffer(buffer: usize) -> Result<Self> {
        if !(1..=1_000_000).contains(&buffer) {
            return Err(Error::invalid("buffer", "must be 1 to 1000000"));
        }
        Ok(Self {
            sender: Arc::new(broadcast::Sender::new(buffer)),
        })
    }

    /// How many subscriptions are open.
    pub fn subscriber_count(&self) -> usize {
        self.sender.receiver_count()
    }
}

#[async_trait]
impl EventBus for InMemoryEventBus {
    async fn publish(&self, event: &TenantEvent) -> Result<()> {
        // An error only means nobody subscribes: the event goes nowhere, as documented.
        let _ = self.sender.send(event.clone());
        Ok(())
    }

    async fn subscribe(&self) -> Result<EventStream> {
        Ok(receiver_stream(self.sender.subscribe()))
    }
}

/// A broadcast receiver as an [`EventStream`] that skips, and counts, what it lagged behind.
fn receiver_stream(receiver: broadcast::Receiver<TenantEvent>) -> EventStream {
    Box::pin(futures::stream::unfold(
        receiver,
        |mut receiver| async move {
            loop {
                match receiver.recv().await {
                    Ok(event) => return Some((event, receiver)),
                    Err(broadcast::error::RecvError::Lagged(skipped)) => {
                        tracing::warn!(skipped, "event subscription lagged behind; events skipped");
                        metrics::counter!(LAGGED_TOTAL).increment(skipped);
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    ))
}
