//! Conformance suite of [`EventBus`]: one case per behaviour, and [`event_bus_conformance!`].
//!
//! The factory builds a bus nobody else publishes on (its own key prefix).
//!
//! [`event_bus_conformance!`]: crate::event_bus_conformance

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;

use crate::domain::{Actor, EventId, EventKind, TenantEvent, TenantId, UserId};
use crate::testing::run_concurrently;
use crate::testing::support::unique_slug;
use crate::traits::{EventBus, EventStream};

/// Expands one `#[tokio::test]` per case of [`crate::testing::events`] against the bus
/// `$factory` (an `async fn() -> Fixture<dyn EventBus, G>`, for any guard `G`) builds.
#[macro_export]
macro_rules! event_bus_conformance {
    ($factory:path) => {
        $crate::__conformance_cases!($factory; events;
            a_subscription_sees_what_is_published_after_it_in_order,
            every_subscription_sees_every_event,
            events_come_out_as_they_went_in,
            concurrent_publishers_lose_nothing,
        );
    };
}

/// Longest wait for an event that must come.
const PATIENCE: Duration = Duration::from_secs(10);

/// A sample event of `kind` about a new tenant.
pub fn sample_event(kind: EventKind) -> TenantEvent {
    TenantEvent::about(kind, TenantId::new(), unique_slug("ev"), Actor::System)
}

/// The next event of `stream`, waiting up to 10 s.
///
/// # Panics
/// When none comes, or the stream ends.
pub async fn next_event(stream: &mut EventStream) -> TenantEvent {
    tokio::time::timeout(PATIENCE, stream.next())
        .await
        .expect("an event within 10 s")
        .expect("the stream goes on")
}

async fn subscribe(bus: &dyn EventBus) -> EventStream {
    bus.subscribe().await.expect("subscribe")
}

async fn publish(bus: &dyn EventBus, event: &TenantEvent) {
    bus.publish(event).await.expect("publish");
}

/// An event published before the subscription is not replayed; those after it come in order.
pub async fn a_subscription_sees_what_is_published_after_it_in_order(bus: &dyn EventBus) {
    publish(bus, &sample_event(EventKind::Registered)).await;
    let mut stream = subscribe(bus).await;
    let events: Vec<_> = EventKind::ALL.iter().map(|k| sample_event(*k)).collect();
    for event in &events {
        publish(bus, event).await;
    }
    for event in &events {
        assert_eq!(
            next_event(&mut stream).await.id,
            event.id,
            "in order, none before"
        );
    }
}

/// Two subscriptions each see every event.
pub async fn every_subscription_sees_every_event(bus: &dyn EventBus) {
    let mut first = subscribe(bus).await;
    let mut second = subscribe(bus).await;
    let events: Vec<_> = (0..5).map(|_| sample_event(EventKind::Suspended)).collect();
    for event in &events {
        publish(bus, event).await;
    }
    for event in &events {
        assert_eq!(next_event(&mut first).await.id, event.id);
        assert_eq!(next_event(&mut second).await.id, event.id);
    }
}

/// Id, kind, tenant, actor, time and details survive the trip.
pub async fn events_come_out_as_they_went_in(bus: &dyn EventBus) {
    let mut stream = subscribe(bus).await;
    let actors = [
        Actor::System,
        Actor::Admin,
        Actor::User { id: UserId::new() },
        Actor::Host {
            name: "billing \"service\" ü".to_owned(),
        },
    ];
    let mut sent = Vec::new();
    for (n, actor) in actors.into_iter().enumerate() {
        let mut event = sample_event(EventKind::BackupFailed).with_details(
            serde_json::json!({ "reason": "disk full", "n": n, "nested": [1, {"a": null}] }),
        );
        event.actor = actor;
        publish(bus, &event).await;
        sent.push(event);
    }
    for event in sent {
        assert_eq!(next_event(&mut stream).await, event);
    }
}

/// Events from concurrent publishers all arrive, each once.
pub async fn concurrent_publishers_lose_nothing(bus: &dyn EventBus) {
    let mut stream = subscribe(bus).await;
    let ids: Vec<Vec<EventId>> = run_concurrently(8, |_| async move {
        let mut ids = Vec::new();
        for _ in 0..10 {
            let event = sample_event(EventKind::QuotaExceeded);
            publish(bus, &event).await;
            ids.push(event.id);
        }
        ids
    });
    let expected: HashSet<EventId> = ids.into_iter().flatten().collect();
    let mut seen = HashSet::new();
    for _ in 0..expected.len() {
        let event = next_event(&mut stream).await;
        assert!(seen.insert(event.id), "each event once");
    }
    assert_eq!(seen, expected);
}
