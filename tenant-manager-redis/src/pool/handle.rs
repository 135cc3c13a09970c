//! One pooled connection handle for either deployment: a multiplexed connection to a standalone
//! Redis, or a cluster connection that routes each command to the master of its keys' slot.

use std::fmt;
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Client, Cmd, Pipeline, RedisError, RedisFuture, Value};

/// A connection of the pool: cheap to clone (both kinds multiplex over their sockets).
#[derive(Clone)]
pub(crate) enum Handle {
    /// A standalone server (or a replica set's primary behind one address).
    Single(MultiplexedConnection),
    /// A Redis Cluster: one multiplexed connection per node, commands routed by key slot.
    Cluster(ClusterConnection),
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Single(_) => f.write_str("Handle::Single"),
            Self::Cluster(_) => f.write_str("Handle::Cluster"),
        }
    }
}

impl Handle {
    /// Sets the reply timeout of this handle's next commands. Only standalone connections take
    /// one per handle; cluster handles of the blocking pool have no reply timeout of their own
    /// and are bounded by the caller (see `RedisPool::query_blocking`).
    pub(crate) fn set_response_timeout(&mut self, timeout: Duration) {
        if let Self::Single(mux) = self {
            mux.set_response_timeout(timeout);
        }
    }
}

impl ConnectionLike for Handle {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(mux) => mux.req_packed_command(cmd),
            Self::Cluster(cluster) => cluster.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(mux) => mux.req_packed_commands(pipeline, offset, count),
            Self::Cluster(cluster) => cluster.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(mux) => mux.get_db(),
            Self::Cluster(cluster) => cluster.get_db(),
        }
    }
}

/// Opens [`Handle`]s of one kind.
#[derive(Clone)]
pub(crate) enum Connector {
    /// Standalone: the client and the connect and reply timeouts of each connection.
    Single(Client, AsyncConnectionConfig),
    /// Cluster: the client holds the seeds, credentials, TLS roots and timeouts; `connect`
    /// bounds the whole handshake (seeds, slot map, every master) by this duration.
    Cluster(ClusterClient, Duration),
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Single(..) => f.write_str("Connector::Single"),
            Self::Cluster(..) => f.write_str("Connector::Cluster"),
        }
    }
}

impl Connector {
    /// Opens one handle.
    pub(crate) async fn connect(&self) -> Result<Handle, RedisError> {
        match self {
            Self::Single(client, config) => client
                .get_multiplexed_async_connection_with_config(config)
                .await
                .map(Handle::Single),
            Self::Cluster(client, bound) => {
                match tokio::time::timeout(*bound, client.get_async_connection()).await {
                    Ok(connected) => connected.map(Handle::Cluster),
                    Err(_) => Err(RedisError::from(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "redis cluster connect timed out",
                    ))),
                }
            }
        }
    }
}
