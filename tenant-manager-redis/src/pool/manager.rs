//! The bb8 connection manager: multiplexed (or cluster) connections with connect and reply
//! timeouts, and a broken flag so a connection that failed is replaced instead of reused.

use std::sync::Arc;

use redis::RedisError;

use super::handle::{Connector, Handle};
use super::health::Health;

/// A pooled connection, whether it must be thrown away when returned, and the pool's
/// connection generation when it was opened (see [`Health::generation`]).
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) mux: Handle,
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
    connector: Connector,
    health: Arc<Health>,
}

impl Manager {
    pub(crate) fn new(connector: Connector, health: Arc<Health>) -> Self {
        Self { connector, health }
    }
}

impl bb8::ManageConnection for Manager {
    type Connection = Conn;
    type Error = RedisError;

    async fn connect(&self) -> Result<Conn, RedisError> {
        // Read before connecting: a loss noticed meanwhile makes this connection stale too,
        // which at worst costs one reconnection.
        let generation = self.health.generation();
        match self.connector.connect().await {
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
