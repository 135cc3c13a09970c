//! [`RedisEventGroup`]: a consumer group of the event stream: each event handled once per
//! group, at least once, with redelivery and dead letters.

use std::time::Duration;

use tenant_manager_core::{Error, Result, TenantEvent, validate_consumer};
use tokio::time::Instant;

use super::RedisEventBus;
use super::entry::{DeadEvent, Entry, EventDelivery, StreamReply, dead_event, event_of};
use crate::queue::millis;
use crate::stream::{oldest_entries, validate_name};

/// Stale deliveries one reclaim pass takes over at most.
const RECLAIM_BATCH: usize = 10;

/// A consumer group of a [`RedisEventBus`]'s stream (Redis Streams `XREADGROUP`).
///
/// - Each event reaches one consumer of the group (consumers share the work); every group
///   sees every event.
/// - At least once: an event delivered and not acked within
///   [`EventStreamConfig::visibility_timeout`](super::EventStreamConfig::visibility_timeout)
///   is taken over by the next consumer that asks (`XAUTOCLAIM`), with its delivery count
///   raised. Consumers drop duplicates by event id.
/// - Dead letters: an event delivered
///   [`max_deliveries`](super::EventStreamConfig::max_deliveries) times without an ack, or
///   [`reject`](RedisEventGroup::reject)ed, moves to the group's dead-letter stream with the
///   reason, in one transaction with its ack. Operators list them and take one back to handle
///   it again.
/// - A group missing from Redis (first use, or a Redis that restarted without its data) is
///   created again from the start of the stream.
#[derive(Debug, Clone)]
pub struct RedisEventGroup {
    bus: RedisEventBus,
    name: String,
    dead: String,
}

impl RedisEventGroup {
    pub(super) fn new(bus: RedisEventBus, name: &str) -> Result<Self> {
        validate_name("group", name)?;
        let dead = format!("{}{name}", bus.keys.dead_prefix);
        Ok(Self {
            bus,
            name: name.to_owned(),
            dead,
        })
    }

    /// The group's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next event for `consumer`: a stale delivery of another consumer first, else a new
    /// event, waiting up to `wait` for one.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `consumer` (1 to 64 of `[A-Za-z0-9_.:-]`);
    /// [`Error::Unavailable`] when Redis cannot be reached.
    pub async fn receive(&self, consumer: &str, wait: Duration) -> Result<Option<EventDelivery>> {
        validate_consumer(consumer)?;
        let deadline = Instant::now() + wait;
        loop {
            if let Some(delivery) = self.with_group(|| self.reclaim(consumer)).await? {
                return Ok(Some(delivery));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let block = left
                .min(self.bus.config.poll_interval)
                .min(self.bus.config.visibility_timeout);
            if let Some(delivery) = self.with_group(|| self.read_new(consumer, block)).await? {
                return Ok(Some(delivery));
            }
            if left.is_zero() || Instant::now() >= deadline {
                return Ok(None);
            }
        }
    }

    /// Marks a delivery handled: the group will not deliver the event again.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when Redis cannot be reached.
    pub async fn ack(&self, delivery: &EventDelivery) -> Result<()> {
        let _: i64 = self
            .bus
            .pool
            .query(
                redis::cmd("XACK")
                    .arg(&self.bus.keys.stream)
                    .arg(&self.name)
                    .arg(&delivery.entry),
            )
            .await?;
        Ok(())
    }

    /// Gives up on a delivery now: its event moves to the dead letters with `error`.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when Redis cannot be reached.
    pub async fn reject(&self, delivery: &EventDelivery, error: &str) -> Result<()> {
        let json = String::from_utf8(delivery.event.to_json()?)
            .map_err(|e| Error::internal_with("event JSON is not UTF-8", e))?;
        self.dead_letter(&delivery.entry, &json, error, delivery.deliveries)
            .await
    }

    /// Adds `event` to the dead letters with `error` and `deliveries`, outside any delivery:
    /// for a consumer that took a dead letter back ([`take_dead_letter`]) and failed to handle
    /// it again. Returns the new dead letter's id.
    ///
    /// [`take_dead_letter`]: RedisEventGroup::take_dead_letter
    ///
    /// # Errors
    /// [`Error::Unavailable`] when Redis cannot be reached.
    pub async fn bury(&self, event: &TenantEvent, error: &str, deliveries: u64) -> Result<String> {
        let json = String::from_utf8(event.to_json()?)
            .map_err(|e| Error::internal_with("event JSON is not UTF-8", e))?;
        let id: String = self
            .bus
            .pool
            .query(
                redis::cmd("XADD")
                    .arg(&self.dead)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(self.bus.config.dead_letter_max_len)
                    .arg("*")
                    .arg("event")
                    .arg(json)
                    .arg("error")
                    .arg(tenant_manager_core::truncate_utf8(error, 4096))
                    .arg("deliveries")
                    .arg(deliveries),
            )
            .await?;
        metrics::counter!("tenant_events_dead_lettered_total", "group" => self.name.clone())
            .increment(1);
        Ok(id)
    }

    /// [`reject`](RedisEventGroup::reject), recording `attempts` as the deliveries it took
    /// (a consumer that retried the event itself before giving up).
    ///
    /// # Errors
    /// [`Error::Unavailable`] when Redis cannot be reached.
    pub async fn reject_after(
        &self,
        delivery: &EventDelivery,
        error: &str,
        attempts: u64,
    ) -> Result<()> {
        let json = String::from_utf8(delivery.event.to_json()?)
            .map_err(|e| Error::internal_with("event JSON is not UTF-8", e))?;
        self.dead_letter(&delivery.entry, &json, error, attempts)
            .await
    }

    /// Up to `limit` dead letters, oldest first.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when Redis cannot be reached.
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadEvent>> {
        oldest_entries(&self.bus.pool, &self.dead, limit)
            .await?
            .iter()
            .map(|(id, fields)| dead_event(id, fields))
            .collect()
    }

    /// Removes the dead letter `id` and returns it, for the caller to handle again; `None`
    /// when there is no such dead letter (or a racing caller took it first).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `id` unless it is a stream id (`<ms>-<seq>`);
    /// [`Error::Unavailable`] when Redis cannot be reached.
    pub async fn take_dead_letter(&self, id: &str) -> Result<Option<DeadEvent>> {
        let valid = id
            .split_once('-')
            .is_some_and(|(ms, seq)| is_number(ms) && is_number(seq));
        if !valid {
            return Err(Error::invalid(
                "id",
                "must be a dead letter's id (<ms>-<seq>)",
            ));
        }
        let entries: Vec<Entry> = self
            .bus
            .pool
            .query(redis::cmd("XRANGE").arg(&self.dead).arg(id).arg(id))
            .await?;
        let Some((id, fields)) = entries.first() else {
            return Ok(None);
        };
        let dead = dead_event(id, fields)?;
        let removed: i64 = self
            .bus
            .pool
            .query(redis::cmd("XDEL").arg(&self.dead).arg(id))
            .await?;
        Ok((removed == 1).then_some(dead))
    }

    /// Runs `call`, creating the group and running it again when Redis says it is missing.
    async fn with_group<T, F, Fut>(&self, call: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        match call().await {
            Err(e) if mentions(&e, "NOGROUP") => {
                self.create_group().await?;
                call().await
            }
            other => other,
        }
    }

    async fn create_group(&self) -> Result<()> {
        let created: Result<String> = self
            .bus
            .pool
            .query(
                redis::cmd("XGROUP")
                    .arg("CREATE")
                    .arg(&self.bus.keys.stream)
                    .arg(&self.name)
                    .arg("0")
                    .arg("MKSTREAM"),
            )
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(e) if mentions(&e, "BUSYGROUP") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Takes over the first delivery idle past the visibility timeout that may still be
    /// delivered, one entry at a time; dead-letters those delivered too often on the way
    /// (at most [`RECLAIM_BATCH`] of them per call).
    async fn reclaim(&self, consumer: &str) -> Result<Option<EventDelivery>> {
        let config = &self.bus.config;
        let mut cursor = "0-0".to_owned();
        for _ in 0..RECLAIM_BATCH {
            let (next, claimed, _): (String, Vec<Entry>, Vec<String>) = self
                .bus
                .pool
                .query(
                    redis::cmd("XAUTOCLAIM")
                        .arg(&self.bus.keys.stream)
                        .arg(&self.name)
                        .arg(consumer)
                        .arg(millis(config.visibility_timeout))
                        .arg(&cursor)
                        .arg("COUNT")
                        .arg(1),
                )
                .await?;
            if let Some((entry, fields)) = claimed.into_iter().next() {
                let deliveries = self.deliveries(&entry).await?;
                match event_of(&fields) {
                    Ok(event) if deliveries <= u64::from(config.max_deliveries) => {
                        return Ok(Some(EventDelivery {
                            event,
                            entry,
                            deliveries,
                        }));
                    }
                    Ok(_) => {
                        let json = fields.get("event").cloned().unwrap_or_default();
                        let given = deliveries.saturating_sub(1);
                        let why = format!("not acknowledged after {given} deliveries");
                        self.dead_letter(&entry, &json, &why, given).await?;
                    }
                    Err(_) => self.skip_malformed(&entry).await?,
                }
            }
            if next == "0-0" {
                break;
            }
            cursor = next;
        }
        Ok(None)
    }

    /// A new event for `consumer`, blocking up to `block` (not at all when zero).
    async fn read_new(&self, consumer: &str, block: Duration) -> Result<Option<EventDelivery>> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&self.name)
            .arg(consumer)
            .arg("COUNT")
            .arg(1);
        let reply: StreamReply = if block.is_zero() {
            cmd.arg("STREAMS").arg(&self.bus.keys.stream).arg(">");
            self.bus.pool.query(&cmd).await?
        } else {
            cmd.arg("BLOCK")
                .arg(millis(block))
                .arg("STREAMS")
                .arg(&self.bus.keys.stream)
                .arg(">");
            self.bus.pool.query_blocking(&cmd, block).await?
        };
        let Some((entry, fields)) = reply.into_iter().flatten().flat_map(|(_, e)| e).next() else {
            return Ok(None);
        };
        match event_of(&fields) {
            Ok(event) => Ok(Some(EventDelivery {
                event,
                entry,
                deliveries: 1,
            })),
            Err(_) => {
                self.skip_malformed(&entry).await?;
                Ok(None)
            }
        }
    }

    /// How many times the group delivered `entry`.
    async fn deliveries(&self, entry: &str) -> Result<u64> {
        let pending: Vec<(String, String, u64, u64)> = self
            .bus
            .pool
            .query(
                redis::cmd("XPENDING")
                    .arg(&self.bus.keys.stream)
                    .arg(&self.name)
                    .arg(entry)
                    .arg(entry)
                    .arg(1),
            )
            .await?;
        Ok(pending.first().map_or(1, |p| p.3))
    }

    /// Moves `entry` (whose event is `json`) to the dead letters and acks it, in one
    /// transaction.
    async fn dead_letter(
        &self,
        entry: &str,
        json: &str,
        error: &str,
        deliveries: u64,
    ) -> Result<()> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("XADD")
            .arg(&self.dead)
            .arg("MAXLEN")
            .arg("~")
            .arg(self.bus.config.dead_letter_max_len)
            .arg("*")
            .arg("event")
            .arg(json)
            .arg("error")
            .arg(tenant_manager_core::truncate_utf8(error, 4096))
            .arg("deliveries")
            .arg(deliveries)
            .arg("entry")
            .arg(entry)
            .ignore()
            .cmd("XACK")
            .arg(&self.bus.keys.stream)
            .arg(&self.name)
            .arg(entry)
            .ignore();
        let () = self.bus.pool.query_pipeline(&pipe).await?;
        metrics::counter!("tenant_events_dead_lettered_total", "group" => self.name.clone())
            .increment(1);
        Ok(())
    }

    /// Acks an entry that holds no well-formed event: nobody can handle it.
    async fn skip_malformed(&self, entry: &str) -> Result<()> {
        tracing::warn!(entry, group = %self.name, "skipping a malformed event entry");
        let _: i64 = self
            .bus
            .pool
            .query(
                redis::cmd("XACK")
                    .arg(&self.bus.keys.stream)
                    .arg(&self.name)
                    .arg(entry),
            )
            .await?;
        Ok(())
    }
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `error` or a source of it mentions `code` (a Redis error code such as `NOGROUP`).
fn mentions(error: &Error, code: &str) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if e.to_string().contains(code) {
            return true;
        }
        current = e.source();
    }
    false
}
