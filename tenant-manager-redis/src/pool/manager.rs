//! The bb8 connection manager: multiplexed connections with connect and reply timeouts, and
//! a broken flag so a connection that failed is replaced instead of reused.

use std::sync::Arc;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisError};

use super::health::Health;

/// A pooled connection, whether it must be thrown away when returned, and the pool's
/// connection generation when it was opened (see [`Health::generation`]).
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) mux: MultiplexedConnection,
    pub(crate) broken: bool,
    pub(crate) generation: u64,
}

/// Opens connections for a [`bb8::Pool`].
///
/// Unlike `bb8_redis::RedisConnectionManager`, it bounds connect and reply times, needs no
/// `PING` on checkout (a failed command marks its connection broken instead, and a dropped
/// connection makes every older one stale) and reports connect outcomes to the pool's
/// [`Health`].
#[derive(Debug, Clone)]
pub(crate) struct Manager {
    client: Client,
    config: AsyncConnectionConfig,
    health: Arc<Health>,
}

impl Manager {
    pub(crate) fn new(client: Client, config: AsyncConnectionConfig, health: Arc<Health>) -> Self {
        Self {
            client,
            config,
            health,
        }
    }
}

impl bb8::ManageConnection for Manager {
    type Connection = Conn;
    type Error = RedisError;

    async fn connect(&self) -> Result<Conn, RedisError> {
        // Read before connecting: a loss noticed meanwhile makes this connection stale too,
        // which at worst costs one reconnection.
        let generation = self.health.generation();
        match self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await
        {
            Ok(mux) => {
                self.health.record_success();
                Ok(Conn {
                    mux,
                    broken: false,
                    generation,
                })
            }
            Err(err) => {
                tracing::warn!(error = %err, "redis connect failed");
                self.health.record_failure(&err);
                Err(err)
            }
        }
    }

    async fn is_valid(&self, conn: &mut Conn) -> Result<(), RedisError> {
        redis::cmd("PING")
            .query_async::<String>(&mut conn.mux)
            .await
            .map(drop)
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.broken || conn.generation != self.health.generation()
    }
}
