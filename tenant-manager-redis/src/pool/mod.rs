//! [`RedisPool`]: the bb8 pool of Redis connections every component shares.

mod clients;
mod handle;
mod health;
mod manager;
mod nodes;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::{FromRedisValue, RedisError, RedisResult, ScriptInvocation};
use tenant_manager_core::{Error, Result};

use crate::config::{RedisConfig, redact_url};
use crate::error::{BACKEND, breaks_connection, is_dropped, map_redis, timed_out};
use crate::keys::Keys;
use clients::build_clients;
use handle::{Connector, Handle};
use health::Health;
use manager::Manager;
use nodes::PubSubTargets;

/// No pooled connection became free within the acquire timeout.
#[derive(Debug, thiserror::Error)]
#[error("no redis connection within {waited:?}")]
struct AcquireTimedOut {
    waited: Duration,
    #[source]
    last_connect_error: Option<RedisError>,
}

/// Calls are refused while Redis is known to be unreachable.
#[derive(Debug, thiserror::Error)]
#[error("redis is unreachable; retrying in the background")]
struct KnownDown {
    #[source]
    last_connect_error: Option<RedisError>,
}

/// Whether a call is refused at once while the pool is known down, or tries to connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Patience {
    /// Refused at once while down (one background probe reconnects): ordinary calls.
    FailFast,
    /// Checks out (and connects, bounded by the connect timeout) even while down.
    Connect,
}

/// A pool of Redis connections shared by the quota enforcer, tenant cache, job queue and locks.
///
/// Cheap to clone. Every command runs with bounded connect, acquire and reply times; once a
/// connect has failed, calls return [`Error::Unavailable`] at once while one background probe
/// per [`RedisConfig::retry_interval`] reconnects, so a dead Redis costs callers no latency.
/// Blocking reads use a separate small pool so they never delay ordinary commands.
///
/// With [`RedisConfig::cluster`] each pooled connection is a cluster connection: commands and
/// scripts go to the master of their keys' slot (every script's keys share a hash tag), and
/// the cache's subscriber listens on one node (`PUBLISH` reaches every node of a cluster).
#[derive(Clone)]
pub struct RedisPool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    commands: bb8::Pool<Manager>,
    blocking: bb8::Pool<Manager>,
    /// Clients for pub/sub connections, tried in order: the server, or each cluster seed,
    /// then the cluster nodes learned since.
    pubsub: PubSubTargets,
    health: Arc<Health>,
    keys: Keys,
    config: RedisConfig,
}

impl fmt::Debug for RedisPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.commands.state();
        f.debug_struct("RedisPool")
            .field("url", &redact_url(&self.inner.config.url))
            .field("key_prefix", &self.inner.keys.prefix())
            .field("connections", &state.connections)
            .field("idle", &state.idle_connections)
            .field("down", &self.inner.health.is_down())
            .finish()
    }
}

impl RedisPool {
    /// Validates `config` and creates the pool. Connections open lazily, on first use; call
    /// [`RedisPool::ping`] to check the server at start-up.
    ///
    /// # Errors
    /// - [`Error::InvalidInput`] on a field of `config` (`redis.url`, `redis.key_prefix`, ...).
    /// - [`Error::Internal`] when called outside a Tokio runtime.
    pub async fn connect(config: RedisConfig) -> Result<Self> {
        config.validate()?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::internal("RedisPool::connect needs a Tokio runtime"));
        }
        let clients = build_clients(&config)?;
        let health = Arc::new(Health::new());
        let build = |size: u32, connector: Connector| {
            bb8::Pool::builder()
                .max_size(size)
                .min_idle(None)
                .test_on_check_out(false)
                .retry_connection(false)
                .connection_timeout(config.acquire_timeout)
                .build_unchecked(Manager::new(connector, health.clone()))
        };
        let commands = build(config.pool_size, clients.commands);
        let blocking = build(config.blocking_pool_size, clients.blocking);
        Ok(Self {
            inner: Arc::new(PoolInner {
                commands,
                blocking,
                pubsub: PubSubTargets::new(clients.pubsub, clients.template),
                health,
                keys: Keys::new(&config.key_prefix),
                config,
            }),
        })
    }

    /// Sends `PING`.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when Redis cannot be reached.
    pub async fn ping(&self) -> Result<()> {
        self.query::<String>(&redis::cmd("PING")).await.map(drop)
    }

    /// Runs one command on a pooled connection, with the pool's timeouts and error mapping.
    /// Hosts use it for their own keys; prefix them with [`RedisPool::key_prefix`].
    ///
    /// # Errors
    /// [`Error::Unavailable`] when Redis cannot be reached; [`Error::Internal`] when the
    /// command fails or its reply does not convert to `T`.
    pub async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T> {
        self.run(
            &self.inner.commands,
            Patience::FailFast,
            |mut mux| async move { cmd.query_async(&mut mux).await },
        )
        .await
    }

    /// Runs a pipeline (add `.atomic()` for `MULTI`/`EXEC`) in one round trip.
    ///
    /// # Errors
    /// As [`RedisPool::query`].
    pub async fn query_pipeline<T: FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T> {
        self.run(
            &self.inner.commands,
            Patience::FailFast,
            |mut mux| async move { pipe.query_async(&mut mux).await },
        )
        .await
    }

    /// The prefix of every key and channel of this deployment.
    pub fn key_prefix(&self) -> &str {
        self.inner.keys.prefix()
    }

    /// The settings the pool was built with.
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    /// Open and idle connections of the command pool.
    pub fn connections(&self) -> (u32, u32) {
        let state = self.inner.commands.state();
        (state.connections, state.idle_connections)
    }

    pub(crate) fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    /// Runs a script with EVALSHA, loading it on `NOSCRIPT`.
    pub(crate) async fn invoke<T: FromRedisValue>(
        &self,
        script: &ScriptInvocation<'_>,
    ) -> Result<T> {
        self.run(
            &self.inner.commands,
            Patience::FailFast,
            |mut mux| async move { script.invoke_async(&mut mux).await },
        )
        .await
    }

    /// Runs an idempotent script like [`RedisPool::invoke`], once more on a fresh connection
    /// when the first try failed because a connection dropped (the pool's generation moved
    /// meanwhile: Redis restarted, failed over or the network was cut). Only for scripts whose
    /// second run after a lost reply changes nothing that matters (cache lookups and fills).
    pub(crate) async fn invoke_idempotent<T: FromRedisValue>(
        &self,
        script: &ScriptInvocation<'_>,
    ) -> Result<T> {
        let generation = self.inner.health.generation();
        match self.invoke(script).await {
            Err(Error::Unavailable { .. }) if self.inner.health.generation() != generation => {
                self.invoke(script).await
            }
            other => other,
        }
    }

    /// Runs an idempotent script that must not be given up lightly (an invalidation: a lost
    /// one leaves other instances serving a suspended tenant). Like
    /// [`RedisPool::invoke_idempotent`], but the second try is also made when the pool was
    /// refusing calls after a failed connect, and then waits for a real connection (bounded
    /// by the connect timeout) instead of failing fast: Redis may be back already.
    pub(crate) async fn invoke_must_deliver<T: FromRedisValue>(
        &self,
        script: &ScriptInvocation<'_>,
    ) -> Result<T> {
        let generation = self.inner.health.generation();
        let was_down = self.inner.health.is_down();
        match self.invoke(script).await {
            Err(Error::Unavailable { .. })
                if was_down || self.inner.health.generation() != generation =>
            {
                self.run(
                    &self.inner.commands,
                    Patience::Connect,
                    |mut mux| async move { script.invoke_async(&mut mux).await },
                )
                .await
            }
            other => other,
        }
    }

    /// Runs a command that blocks server-side for up to `block` (`XREAD BLOCK`) on the
    /// blocking pool, with a reply timeout of `block` plus the command timeout.
    pub(crate) async fn query_blocking<T: FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
        block: Duration,
    ) -> Result<T> {
        let timeout = block.saturating_add(self.inner.config.command_timeout);
        self.run(
            &self.inner.blocking,
            Patience::FailFast,
            |mut mux| async move {
                mux.set_response_timeout(timeout);
                // Cluster handles have no reply timeout of their own: bound the call here (the
                // blocking pool discards a connection whose command did not finish).
                match tokio::time::timeout(timeout, cmd.query_async(&mut mux)).await {
                    Ok(reply) => reply,
                    Err(_) => Err(RedisError::from(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "blocking read timed out",
                    ))),
                }
            },
        )
        .await
    }

    /// Opens a dedicated pub/sub connection, bounded by the connect timeout: to the server, or
    /// to the first cluster seed that answers, else the first node learned by
    /// [`RedisPool::learn_cluster_nodes`] that answers (a message published on any node of a
    /// cluster reaches the subscribers of every node).
    pub(crate) async fn pubsub(&self) -> Result<redis::aio::PubSub> {
        let timeout = self.inner.config.connect_timeout;
        let mut last = timed_out("pub/sub connect timed out");
        for client in &self.inner.pubsub.clients() {
            match tokio::time::timeout(timeout, client.get_async_pubsub()).await {
                Ok(Ok(pubsub)) => return Ok(pubsub),
                Ok(Err(err)) => last = map_redis(err),
                Err(_) => last = timed_out("pub/sub connect timed out"),
            }
        }
        Err(last)
    }

    /// On a Redis Cluster, learns its nodes (masters and replicas) from `CLUSTER SLOTS`, for
    /// [`RedisPool::pubsub`] to fall back on when the seeds are gone; returns how many nodes
    /// are known. Best effort: a failure keeps what was learned before.
    pub(crate) async fn learn_cluster_nodes(&self) -> usize {
        if !self.inner.config.cluster {
            return 0;
        }
        match self
            .query::<redis::Value>(redis::cmd("CLUSTER").arg("SLOTS"))
            .await
        {
            Ok(reply) => self.inner.pubsub.learn(&self.inner.config, &reply),
            Err(error) => tracing::debug!(%error, "could not read the cluster's nodes"),
        }
        self.inner.pubsub.learned()
    }

    /// Checks out a connection of `pool` and runs `f` on its handle. The connection is marked
    /// broken when `f` fails in a way that leaves it unusable, and, for the blocking pool, when
    /// `f` is cancelled midway (its blocking command would still hold the connection). Other
    /// cancelled commands are harmless: the multiplexer discards their late replies.
    async fn run<T, F, Fut>(&self, pool: &bb8::Pool<Manager>, patience: Patience, f: F) -> Result<T>
    where
        F: FnOnce(Handle) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let mut conn: bb8::PooledConnection<'_, Manager> = self.checkout(pool, patience).await?;
        let mux = conn.mux.clone();
        conn.broken = std::ptr::eq(pool, &self.inner.blocking);
        let result = f(mux).await;
        conn.broken = matches!(&result, Err(err) if breaks_connection(err));
        if let Err(err) = &result
            && is_dropped(err)
        {
            // The server went away under this connection: the others opened before are
            // likely dead as well, and would each fail one more command.
            self.connections_lost();
        }
        result.map_err(map_redis)
    }

    /// Makes every connection opened so far stale: each is discarded at its next checkout
    /// (without a round trip) instead of failing a command. Called when a connection is seen
    /// to drop, by a command or by the cache's subscriber, since after a restart, failover or
    /// network cut the idle pooled connections are dead too.
    pub(crate) fn connections_lost(&self) {
        self.inner.health.connections_lost();
    }

    /// Records that Redis answers again (the cache's subscriber connected): calls refused
    /// since a failed connect go through again at once.
    pub(crate) fn connections_restored(&self) {
        self.inner.health.record_success();
    }

    async fn checkout<'p>(
        &self,
        pool: &'p bb8::Pool<Manager>,
        patience: Patience,
    ) -> Result<bb8::PooledConnection<'p, Manager>> {
        let health = &self.inner.health;
        if patience == Patience::FailFast && health.is_down() {
            if health.claim_probe(self.inner.config.retry_interval) {
                let probe = pool.clone();
                tokio::spawn(async move {
                    let _ = probe.get().await;
                });
            }
            return Err(Error::unavailable(
                BACKEND,
                KnownDown {
                    last_connect_error: health.last_error(),
                },
            ));
        }
        // Idle connections older than the last loss are dropped here, without a round trip;
        // each try either returns a current connection or removes a stale one from the pool.
        let tries = pool.state().connections.saturating_add(1);
        for _ in 0..tries {
            let mut conn = pool.get().await.map_err(|err| match err {
                bb8::RunError::User(err) => map_redis(err),
                bb8::RunError::TimedOut => Error::unavailable(
                    BACKEND,
                    AcquireTimedOut {
                        waited: self.inner.config.acquire_timeout,
                        last_connect_error: health.last_error(),
                    },
                ),
            })?;
            if conn.generation == health.generation() {
                return Ok(conn);
            }
            conn.broken = true;
        }
        Err(Error::unavailable(
            BACKEND,
            KnownDown {
                last_connect_error: health.last_error(),
            },
        ))
    }
}
