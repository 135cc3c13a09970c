//! The subscriber task of a tenant cache: listens on the invalidation channel on a dedicated
//! pub/sub connection, drops local copies and tells the [`Feed`]'s receivers; reconnects with
//! backoff. While it is not subscribed the local layer is bypassed, so a missed message can
//! never leave a stale copy; after each (re)subscription the local layer is emptied and the
//! receivers get [`Invalidation::All`], as messages may have been missed meanwhile. When the
//! subscription drops, the pool's connections are marked stale, so the first commands after a
//! Redis restart (an invalidation, say) run on fresh connections instead of failing.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::StreamExt;
use tenant_manager_core::{Error, Result, TenantId};
use tokio::task::JoinHandle;

use super::feed::{Feed, Invalidation};
use super::local::Local;
use crate::error::{map_redis, timed_out};
use crate::pool::RedisPool;

/// Payload that drops every local copy.
pub(crate) const INVALIDATE_ALL: &str = "*";

const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Aborts the task when dropped (when the last clone of its cache goes away).
#[derive(Debug)]
pub(crate) struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What one subscriber task works on.
struct Target {
    channel: String,
    local: Weak<Local>,
    feed: Feed,
    ping_interval: Duration,
}

/// Starts the subscriber of `local` on `channel`, telling `feed` of every invalidation and
/// pinging the connection every `ping_interval` so a silently dead connection is noticed.
pub(crate) fn spawn(
    pool: RedisPool,
    channel: String,
    local: &Arc<Local>,
    feed: Feed,
    ping_interval: Duration,
) -> AbortOnDrop {
    let target = Target {
        channel,
        local: Arc::downgrade(local),
        feed,
        ping_interval,
    };
    AbortOnDrop(tokio::spawn(run(pool, target)))
}

async fn run(pool: RedisPool, target: Target) {
    let local = &target.local;
    let mut backoff = MIN_BACKOFF;
    loop {
        let outcome = session(&pool, &target, &mut backoff).await;
        let Some(strong) = local.upgrade() else {
            return;
        };
        strong.set_subscribed(false);
        drop(strong);
        // The pub/sub connection dropped or stopped answering: the pooled connections were
        // opened to the same server and are likely dead too. Without this, each idle one
        // would fail its next command after a restart, an invalidation among them. (A refusal
        // such as a missing ACL permission says nothing about the connections.)
        if matches!(&outcome, Ok(()) | Err(Error::Unavailable { .. })) {
            pool.connections_lost();
        }
        match outcome {
            Ok(()) => tracing::warn!("tenant invalidation subscription closed; reconnecting"),
            Err(err) => tracing::warn!(error = %err, "tenant invalidation subscription failed"),
        }
        // Full jitter keeps many instances from reconnecting in step.
        let pause = backoff.mul_f64(0.5 + rand::random::<f64>() / 2.0);
        tokio::time::sleep(pause).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection's life: subscribe, then apply messages until the connection ends.
async fn session(pool: &RedisPool, target: &Target, backoff: &mut Duration) -> Result<()> {
    let Target {
        channel,
        local,
        feed,
        ping_interval,
    } = target;
    let command_timeout = pool.config().command_timeout;
    let (mut sink, mut messages) = pool.pubsub().await?.split();
    bounded(command_timeout, sink.subscribe(channel.as_str())).await?;
    // Redis answers again: calls need not wait for the pool's own probe to find out.
    pool.connections_restored();
    // On a cluster, where to reconnect should the node of this connection go away.
    pool.learn_cluster_nodes().await;
    match local.upgrade() {
        Some(local) => {
            // Before the flag: a receiver taken once subscribed sees only later messages.
            feed.send(Invalidation::All);
            local.set_subscribed(true);
        }
        None => return Ok(()),
    }
    *backoff = MIN_BACKOFF;
    let mut ping = tokio::time::interval(*ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else {
                    return Ok(());
                };
                let Some(local) = local.upgrade() else {
                    return Ok(());
                };
                match message.get_payload::<String>() {
                    Ok(payload) => feed.send(apply(&local, &payload).await),
                    Err(err) => {
                        // Unreadable: dropping everything is always safe.
                        tracing::warn!(error = %err, "unreadable invalidation message");
                        local.clear();
                        feed.send(Invalidation::All);
                    }
                }
            }
            _ = ping.tick() => {
                // In subscribed mode the reply is `["pong", ""]`, not `PONG`: accept any reply.
                bounded(command_timeout, sink.ping::<redis::Value>()).await?;
            }
        }
    }
}

/// Drops what `payload` names from `local`; returns what was invalidated.
async fn apply(local: &Local, payload: &str) -> Invalidation {
    if payload == INVALIDATE_ALL {
        local.clear();
        return Invalidation::All;
    }
    match payload.parse::<TenantId>() {
        Ok(id) => {
            local.invalidate(id).await;
            Invalidation::Tenant(id)
        }
        Err(_) => {
            // Unknown payload: dropping everything is always safe.
            tracing::warn!("invalidation message is not a tenant id; clearing the local cache");
            local.clear();
            Invalidation::All
        }
    }
}

/// Awaits a pub/sub command for at most `timeout`.
async fn bounded<T>(
    timeout: Duration,
    command: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T> {
    match tokio::time::timeout(timeout, command).await {
        Ok(result) => result.map_err(map_redis),
        Err(_) => Err(timed_out("pub/sub command timed out")),
    }
}
