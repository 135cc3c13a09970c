//! [`RedisEventBus`]: tenant events on a Redis Stream, streamed live to subscriptions and
//! delivered at least once to consumer groups ([`RedisEventGroup`]).

mod config;
mod entry;
mod group;

use std::time::Duration;

use async_trait::async_trait;
use tenant_manager_core::{Error, EventBus, EventStream, Result, TenantEvent};
use tokio::sync::mpsc;

use crate::keys::EventKeys;
use crate::pool::RedisPool;
use crate::queue::millis;
pub use config::EventStreamConfig;
pub use entry::{DeadEvent, EventDelivery};
use entry::{StreamReply, parse_entries};
pub use group::RedisEventGroup;

/// Events a subscription buffers before it waits for its reader.
const SUBSCRIPTION_BUFFER: usize = 256;
/// Events one read of a subscription takes at most.
const READ_BATCH: usize = 100;

/// An [`EventBus`] on a Redis Stream, shared by every instance of a deployment.
///
/// - `publish` appends the event's JSON with `XADD ... MAXLEN ~` [`EventStreamConfig::max_len`],
///   so the stream keeps about that many recent events.
/// - `subscribe` starts a task that follows the stream from its end at that moment
///   (`XREAD BLOCK`) and hands each event to the returned stream: a live, fan-out view across
///   instances. When Redis cannot be reached the task waits a poll interval and reads on from
///   the last event it saw, so a subscription outlives a Redis restart (events the restarted
///   server no longer has are gone). It ends when the stream is dropped.
/// - [`RedisEventBus::group`] gives a consumer group: each event handled once per group, at
///   least once, with redelivery after a visibility timeout and dead letters.
///
/// The stream's keys share one hash tag, so this works on Redis Cluster too.
#[derive(Debug, Clone)]
pub struct RedisEventBus {
    pool: RedisPool,
    keys: EventKeys,
    config: EventStreamConfig,
}

impl RedisEventBus {
    /// A bus on `pool`. Nothing is sent to Redis until first use.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad `config`.
    pub fn new(pool: &RedisPool, config: EventStreamConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            pool: pool.clone(),
            keys: pool.keys().events(&config.name),
            config,
        })
    }

    /// The settings.
    pub fn config(&self) -> &EventStreamConfig {
        &self.config
    }

    /// The consumer group `name` (1 to 64 of `[a-z0-9_.-]`) of this stream. The group is
    /// created in Redis by its first read, from the start of what the stream keeps, so a new
    /// group also receives the retained history (up to [`EventStreamConfig::max_len`] events).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on field `group`.
    pub fn group(&self, name: &str) -> Result<RedisEventGroup> {
        RedisEventGroup::new(self.clone(), name)
    }

    /// The id of the stream's last entry, `0-0` when it is empty.
    async fn last_id(&self) -> Result<String> {
        let last: Vec<(String, std::collections::HashMap<String, String>)> = self
            .pool
            .query(
                redis::cmd("XREVRANGE")
                    .arg(&self.keys.stream)
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1),
            )
            .await?;
        Ok(last
            .into_iter()
            .next()
            .map_or_else(|| "0-0".to_owned(), |(id, _)| id))
    }
}

#[async_trait]
impl EventBus for RedisEventBus {
    async fn publish(&self, event: &TenantEvent) -> Result<()> {
        let json = String::from_utf8(event.to_json()?)
            .map_err(|e| Error::internal_with("event JSON is not UTF-8", e))?;
        let _: String = self
            .pool
            .query(
                redis::cmd("XADD")
                    .arg(&self.keys.stream)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(self.config.max_len)
                    .arg("*")
                    .arg("event")
                    .arg(json)
                    .arg("kind")
                    .arg(event.kind.as_str()),
            )
            .await?;
        Ok(())
    }

    async fn subscribe(&self) -> Result<EventStream> {
        let from = self.last_id().await?;
        let (sender, receiver) = mpsc::channel(SUBSCRIPTION_BUFFER);
        tokio::spawn(follow(self.clone(), from, sender));
        Ok(Box::pin(futures::stream::unfold(
            receiver,
            |mut receiver| async move { receiver.recv().await.map(|event| (event, receiver)) },
        )))
    }
}

/// Reads the stream after `last` and sends each event on, until the receiver is gone.
async fn follow(bus: RedisEventBus, mut last: String, sender: mpsc::Sender<TenantEvent>) {
    let block = bus.config.poll_interval;
    while !sender.is_closed() {
        let read: Result<StreamReply> = bus
            .pool
            .query_blocking(
                redis::cmd("XREAD")
                    .arg("COUNT")
                    .arg(READ_BATCH)
                    .arg("BLOCK")
                    .arg(millis(block))
                    .arg("STREAMS")
                    .arg(&bus.keys.stream)
                    .arg(&last),
                block,
            )
            .await;
        let entries = match read {
            Ok(reply) => parse_entries(reply),
            Err(error) => {
                tracing::warn!(%error, stream = %bus.config.name, "reading tenant events failed; retrying");
                tokio::time::sleep(block.min(Duration::from_secs(1))).await;
                continue;
            }
        };
        for (id, event) in entries {
            last = id;
            match event {
                Ok(event) => {
                    if sender.send(event).await.is_err() {
                        return;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, entry = %last, "skipping a malformed event entry");
                }
            }
        }
    }
}
