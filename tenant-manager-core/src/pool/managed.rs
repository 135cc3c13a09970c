//! The `bb8` manager of every pool: wraps the connector's manager so that each connection
//! holds its permits for its whole life.

use std::sync::Arc;
use std::time::Instant;

use bb8::ManageConnection;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::timeout_at;

use super::cluster::ClusterSlot;
use super::inner::BudgetedManager;
use super::metrics::Counters;
use super::state::PoolState;
use super::{ConnectionOf, TenantConnector};
use crate::domain::TenantId;
use crate::error::Error;

/// A connection of a pool, with the permits it holds. Dropping it closes the connection and
/// then gives the permits back.
pub(crate) struct Pooled<T, S> {
    pub(crate) conn: T,
    /// The connector's state of this connection ([`TenantConnector::Session`]).
    pub(crate) session: S,
    /// Set when the connection must not be reused (reset failed, pool closed, evicted).
    pub(crate) broken: bool,
    /// The tenant whose scope the connection carries (shared pools): set once a scope is
    /// applied, cleared by a reset.
    pub(crate) scoped: Option<TenantId>,
    /// When it was last returned keeping its scope, on the engine's clock.
    pub(crate) kept_at_ms: u64,
    // Dropped after `conn` (fields drop in order): a permit comes back only once its
    // connection is closed.
    held: Box<Held>,
}

/// What a connection holds for its whole life and uses only when it closes. Boxed: `bb8` moves
/// an idle connection out of its queue on every checkout and back on every return, and with
/// many pools each byte of it read there is cold.
struct Held {
    state: Arc<PoolState>,
    counters: Arc<Counters>,
    _tenant_permit: Option<OwnedSemaphorePermit>,
    _permit: OwnedSemaphorePermit,
    /// The slot of the server's cluster budget, when it has one.
    cluster: Option<ClusterSlot>,
}

impl<T, S> Drop for Pooled<T, S> {
    fn drop(&mut self) {
        self.held.state.closed_one();
        self.held.counters.connection_closed();
    }
}

/// Why a connect failed.
enum ConnectError {
    /// The backend refused: waiters of the pool are told at once.
    Loud(Error),
    /// No permit in time, or nobody needs the connection any more: the waiting acquires
    /// keep waiting on their own deadlines.
    Quiet(Error),
}

impl<C: TenantConnector> BudgetedManager<C> {
    async fn open(&self) -> Result<Pooled<ConnectionOf<C>, C::Session>, ConnectError> {
        let quiet = || ConnectError::Quiet(Error::internal("tenant pool closed"));
        let engine = self.engine.upgrade().ok_or_else(quiet)?;
        let deadline = Instant::now() + engine.config.acquire_timeout;
        let closing = self.state.closing();
        tokio::pin!(closing);
        closing.as_mut().enable();
        if self.state.is_closed() {
            return Err(quiet());
        }
        let exhausted = |started: Instant| {
            ConnectError::Quiet(Error::PoolExhausted {
                waited: started.elapsed(),
            })
        };

        let started = Instant::now();
        let tenant_permit = match &self.lease {
            None => None,
            Some(lease) => match lease.try_acquire() {
                Some(permit) => Some(permit),
                None => {
                    // The tenant's pools on other routes hold its cap: idle connections there
                    // close now, and returned ones close while this waits.
                    let _waiting = lease.wait();
                    if let Some(tenant) = self.state.key.tenant() {
                        engine.evict_tenant_idle(tenant, &self.state);
                    }
                    tokio::select! {
                        permit = timeout_at(deadline.into(), lease.acquire()) => match permit {
                            Ok(Some(permit)) => Some(permit),
                            _ => return Err(exhausted(started)),
                        },
                        () = &mut closing => return Err(quiet()),
                    }
                }
            },
        };
        let permit = tokio::select! {
            permit = engine.reserve(&self.state, deadline) => match permit {
                Some(permit) => permit,
                None => return Err(exhausted(started)),
            },
            () = &mut closing => return Err(quiet()),
        };
        let cluster = match &engine.cluster {
            None => None,
            Some(cluster) => {
                let evict = || engine.evict_on(&self.server, &self.state);
                tokio::select! {
                    slot = cluster.slot(&self.server, deadline, &evict) => match slot {
                        Ok(slot) => slot,
                        Err(()) => return Err(exhausted(started)),
                    },
                    () = &mut closing => return Err(quiet()),
                }
            }
        };
        if self.state.active() == 0 {
            // The acquire that asked for this connection gave up; don't open it for nobody.
            return Err(quiet());
        }
        let conn = tokio::select! {
            conn = timeout_at(deadline.into(), self.manager.connect()) => match conn {
                Ok(Ok(conn)) => conn,
                Ok(Err(err)) => return Err(ConnectError::Loud(err.into())),
                Err(_) => {
                    return Err(ConnectError::Loud(Error::unavailable(
                        "database",
                        "connect timed out",
                    )));
                }
            },
            () = &mut closing => return Err(quiet()),
        };
        self.state.opened();
        self.counters.connection_opened();
        Ok(Pooled {
            conn,
            session: C::Session::default(),
            broken: false,
            scoped: None,
            kept_at_ms: 0,
            held: Box::new(Held {
                state: Arc::clone(&self.state),
                counters: Arc::clone(&self.counters),
                _tenant_permit: tenant_permit,
                _permit: permit,
                cluster,
            }),
        })
    }
}

impl<C: TenantConnector> ManageConnection for BudgetedManager<C> {
    type Connection = Pooled<ConnectionOf<C>, C::Session>;
    type Error = Error;

    async fn connect(&self) -> Result<Self::Connection, Error> {
        match self.open().await {
            Ok(conn) => Ok(conn),
            Err(ConnectError::Quiet(err)) => Err(err),
            Err(ConnectError::Loud(err)) => Err(self.state.failure.record(err)),
        }
    }

    async fn is_valid(&self, conn: &mut Self::Connection) -> Result<(), Error> {
        self.manager
            .is_valid(&mut conn.conn)
            .await
            .map_err(Into::into)
    }

    fn has_broken(&self, conn: &mut Self::Connection) -> bool {
        conn.broken
            || conn.held.cluster.as_ref().is_some_and(ClusterSlot::over)
            || self.manager.has_broken(&mut conn.conn)
    }
}
