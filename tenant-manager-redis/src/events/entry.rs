//! Stream entries of events: what a group delivers, what its dead letters hold, and the
//! parsing of `XREAD`/`XREADGROUP`/`XRANGE` replies.

use std::collections::HashMap;

use serde::Serialize;
use tenant_manager_core::{Error, Result, TenantEvent};

/// One stream's entries in an `XREAD`/`XREADGROUP` reply (nil when the wait ran out).
pub(super) type StreamReply = Option<Vec<(String, Vec<Entry>)>>;

pub(super) use crate::stream::Entry;

/// An event delivered to a consumer of a [`RedisEventGroup`](super::RedisEventGroup). Ack it
/// once handled; until then it is delivered again after the visibility timeout.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EventDelivery {
    /// The event.
    pub event: TenantEvent,
    /// The stream entry id (the delivery handle).
    pub entry: String,
    /// Deliveries to this group so far, counting this one (1 on first delivery).
    pub deliveries: u64,
}

/// An event a group gave up on, with why.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct DeadEvent {
    /// Id of the dead-letter entry (to take it back with
    /// [`RedisEventGroup::take_dead_letter`](super::RedisEventGroup::take_dead_letter)).
    pub id: String,
    /// The event.
    pub event: TenantEvent,
    /// Why: the consumer's error, or that it was delivered too many times.
    pub error: String,
    /// Deliveries to the group before it gave up.
    pub deliveries: u64,
}

/// The events of a reply, with their entry ids; an entry that does not hold a well-formed
/// event comes out as an error, so the caller can skip (or dead-letter) it.
pub(super) fn parse_entries(reply: StreamReply) -> Vec<(String, Result<TenantEvent>)> {
    reply
        .into_iter()
        .flatten()
        .flat_map(|(_, entries)| entries)
        .map(|(id, fields)| {
            let event = event_of(&fields);
            (id, event)
        })
        .collect()
}

/// The event in an entry's `event` field.
pub(super) fn event_of(fields: &HashMap<String, String>) -> Result<TenantEvent> {
    let json = fields
        .get("event")
        .ok_or_else(|| Error::invalid("event", "the stream entry holds no event"))?;
    TenantEvent::from_json(json.as_bytes())
}

/// A dead-letter entry.
pub(super) fn dead_event(id: &str, fields: &HashMap<String, String>) -> Result<DeadEvent> {
    let event = event_of(fields)
        .map_err(|e| Error::internal_with("a dead-letter entry holds no well-formed event", e))?;
    Ok(DeadEvent {
        id: id.to_owned(),
        event,
        error: fields.get("error").cloned().unwrap_or_default(),
        deliveries: fields
            .get("deliveries")
            .and_then(|d| d.parse().ok())
            .unwrap_or(0),
    })
}
