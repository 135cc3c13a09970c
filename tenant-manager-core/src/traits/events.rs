//! `EventBus`: publishes tenant life-cycle events and hands them to subscribers.

use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;

use crate::domain::TenantEvent;
use crate::error::Result;

/// A live stream of events, as [`EventBus::subscribe`] returns it. It ends when the bus is
/// dropped (in-process) or never (an adapter that reconnects on its own).
pub type EventStream = Pin<Box<dyn Stream<Item = TenantEvent> + Send + 'static>>;

/// Publishes tenant events and streams them to subscribers.
///
/// [`TenantManager`](crate::manager::TenantManager) and the provisioning worker publish one
/// event per life-cycle change when built `with_events`. Publishing never fails the change
/// itself: the change is already in the registry, so a failed publish is logged and counted
/// (`tenant_events_publish_failures_total`) and the event is lost for this bus.
///
/// # Contract
/// - A subscription sees every event published after `subscribe` returned, in publication
///   order for events published by one caller, each once, until it falls behind: a
///   subscriber that lags more than the adapter's buffer skips the oldest events it missed
///   (counted as `tenant_events_lagged_total`) rather than slowing the publishers down.
/// - Every subscription sees every event (fan-out): subscriptions do not share events.
/// - An event comes out as it went in (same id, kind, tenant, actor, time, details).
/// - Subscriptions are live: an event published before `subscribe` is not replayed.
///   Durable, at-least-once delivery to a group of consumers (each event handled once per
///   group, with dead letters) is an adapter's own API, such as the Redis adapter's
///   consumer groups.
///
/// # Errors
/// `Unavailable` when the backend cannot be reached.
#[async_trait]
pub trait EventBus: std::fmt::Debug + Send + Sync + 'static {
    /// Publishes `event` to every subscription.
    async fn publish(&self, event: &TenantEvent) -> Result<()>;

    /// A live subscription: every event published from now on.
    async fn subscribe(&self) -> Result<EventStream>;
}
