//! The delivery task of one endpoint: events from the endpoint's Redis consumer group (each
//! event once per endpoint across every instance, at least once) or from the in-process bus,
//! posted with retries, exponential backoff and jitter, and dead-lettered after the last
//! attempt.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use rand::Rng as _;
use tenant_manager::redis::RedisEventGroup;
use tenant_manager::{EventBus, TenantEvent};
use tokio_util::sync::CancellationToken;

use super::endpoint::Endpoint;
use super::sender::Sender;
use crate::config::WebhookSettings;

/// How long one read of the consumer group waits for an event.
const RECEIVE_WAIT: Duration = Duration::from_secs(1);
/// Pause after the event source failed (Redis unreachable), before reading again.
const SOURCE_RETRY: Duration = Duration::from_secs(1);

/// How the attempts at one event ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// An attempt was answered `2xx`, after this many attempts.
    Delivered(u32),
    /// Every attempt failed; the last one's error, after this many attempts.
    Failed(String, u32),
    /// Shutdown came between two attempts.
    Cancelled,
}

/// Retries of one endpoint.
#[derive(Debug, Clone)]
pub(crate) struct Attempts {
    pub(crate) sender: Sender,
    pub(crate) max_attempts: u32,
    pub(crate) backoff_base: Duration,
    pub(crate) backoff_max: Duration,
}

impl Attempts {
    pub(crate) fn new(sender: Sender, settings: &WebhookSettings) -> Self {
        Self {
            sender,
            max_attempts: settings.max_attempts.max(1),
            backoff_base: settings.backoff_base,
            backoff_max: settings.backoff_max,
        }
    }

    /// The pause after failed attempt `attempt` (1-based): base doubled per attempt, capped,
    /// then a random point in its upper half (jitter, so endpoints coming back are not hit by
    /// every instance at once).
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let doubled = self
            .backoff_base
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(31)));
        let capped = doubled.min(self.backoff_max);
        let half = capped / 2;
        half + rand::rng().random_range(Duration::ZERO..=half)
    }

    /// Up to `max` attempts at `event`, pausing between them; stops early on `shutdown`.
    pub(crate) async fn run(
        &self,
        endpoint: &Endpoint,
        event: &TenantEvent,
        max: u32,
        shutdown: &CancellationToken,
    ) -> Outcome {
        let body = match event.to_json() {
            Ok(json) => bytes::Bytes::from(json),
            Err(e) => return Outcome::Failed(e.to_string(), 0),
        };
        let mut last = String::new();
        for attempt in 1..=max.max(1) {
            match self.sender.post(&endpoint.config, event, &body).await {
                Ok(()) => {
                    endpoint.counters.delivered(&endpoint.config.id);
                    return Outcome::Delivered(attempt);
                }
                Err(error) => {
                    endpoint.counters.failed(&endpoint.config.id, &error);
                    tracing::warn!(endpoint = %endpoint.config.id, event = %event.id, attempt, %error, "webhook attempt failed");
                    last = error;
                }
            }
            if attempt < max {
                tokio::select! {
                    () = shutdown.cancelled() => return Outcome::Cancelled,
                    () = tokio::time::sleep(self.backoff(attempt)) => {}
                }
            }
        }
        Outcome::Failed(last, max)
    }

    /// Runs the attempts and dead-letters the event when they all fail.
    async fn deliver(
        &self,
        endpoint: &Endpoint,
        event: &TenantEvent,
        shutdown: &CancellationToken,
    ) {
        if let Outcome::Failed(error, attempts) =
            self.run(endpoint, event, self.max_attempts, shutdown).await
        {
            endpoint.bury(event, &error, attempts).await;
        }
    }
}

/// Delivers what the endpoint's consumer group hands this consumer until `shutdown`.
pub(crate) async fn from_group(
    endpoint: Arc<Endpoint>,
    group: RedisEventGroup,
    consumer: String,
    attempts: Attempts,
    shutdown: CancellationToken,
) {
    while !shutdown.is_cancelled() {
        let received = tokio::select! {
            () = shutdown.cancelled() => return,
            received = group.receive(&consumer, RECEIVE_WAIT) => received,
        };
        let delivery = match received {
            Ok(Some(delivery)) => delivery,
            Ok(None) => continue,
            Err(error) => {
                tracing::warn!(endpoint = %endpoint.config.id, %error, "reading the webhook group failed; retrying");
                tokio::time::sleep(SOURCE_RETRY).await;
                continue;
            }
        };
        let event = &delivery.event;
        let done = if endpoint.config.wants(event.kind) {
            match attempts
                .run(&endpoint, event, attempts.max_attempts, &shutdown)
                .await
            {
                // Not acked: another instance takes it over after the visibility timeout.
                Outcome::Cancelled => return,
                Outcome::Delivered(attempts) => {
                    tracing::debug!(endpoint = %endpoint.config.id, event = %event.id, attempts, "webhook delivered");
                    group.ack(&delivery).await
                }
                Outcome::Failed(error, attempts) => {
                    endpoint.counters.dead_lettered(&endpoint.config.id);
                    group
                        .reject_after(&delivery, &error, u64::from(attempts))
                        .await
                }
            }
        } else {
            group.ack(&delivery).await
        };
        if let Err(error) = done {
            tracing::warn!(endpoint = %endpoint.config.id, event = %event.id, %error, "acknowledging a webhook delivery failed; it will be delivered again");
        }
    }
}

/// Delivers every event of the in-process bus (published after start-up) until `shutdown`.
pub(crate) async fn from_bus(
    endpoint: Arc<Endpoint>,
    bus: Arc<dyn EventBus>,
    attempts: Attempts,
    shutdown: CancellationToken,
) {
    let mut stream = loop {
        match bus.subscribe().await {
            Ok(stream) => break stream,
            Err(error) => {
                tracing::warn!(endpoint = %endpoint.config.id, %error, "subscribing to tenant events failed; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(SOURCE_RETRY) => {}
                }
            }
        }
    };
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return,
            event = stream.next() => event,
        };
        let Some(event) = event else { return };
        if endpoint.config.wants(event.kind) {
            attempts.deliver(&endpoint, &event, &shutdown).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let attempts = Attempts {
            sender: Sender::new(Duration::from_secs(1)).unwrap_or_else(|e| panic!("{e}")),
            max_attempts: 5,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_millis(1000),
        };
        for (attempt, full) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (40, 1000),
        ] {
            for _ in 0..20 {
                let pause = attempts.backoff(attempt);
                let full = Duration::from_millis(full);
                assert!(pause >= full / 2 && pause <= full, "{attempt}: {pause:?}");
            }
        }
    }
}
