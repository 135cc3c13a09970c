//! The `bb8` manager of every pool: wraps the connector's manager so that each connection
//! holds its permits for its whole life, and gives them back only once the connection is
//! closed: the connector's [`close`](TenantConnector::close) (for Postgres: `Terminate`, then
//! the server's end of the socket seen closed, i.e. the backend process gone) has finished.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bb8::ManageConnection;
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::timeout_at;

use super::cluster::ClusterSlot;
use super::inner::{BudgetedManager, Closer};
use super::metrics::Counters;
use super::state::PoolState;
use super::{ConnectionOf, TenantConnector};
use crate::domain::TenantId;
use crate::error::Error;

/// How long the engine waits for a discarded connection to close (the connector's
/// [`close`](TenantConnector::close)), or for a connect a checkout gave up on to finish,
/// before it gives the connection's permits and cluster slot back anyway. A backend reads
/// `Terminate` only between statements: one busy for longer, or a server that cannot be
/// reached, is not waited for beyond this.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The connection inside a [`Pooled`]: always there, except while the `Pooled` drops (it is
/// then taken out to be closed).
pub(crate) struct Live<T>(Option<T>);

impl<T> Deref for Live<T> {
    type Target = T;

    fn deref(&self) -> &T {
        match &self.0 {
            Some(conn) => conn,
            None => unreachable!("a pooled connection is taken out only when it drops"),
        }
    }
}

impl<T> DerefMut for Live<T> {
    fn deref_mut(&mut self) -> &mut T {
        match &mut self.0 {
            Some(conn) => conn,
            None => unreachable!("a pooled connection is taken out only when it drops"),
        }
    }
}

/// A connection of a pool, with the permits it holds. Dropping it closes the connection and
/// then gives the permits back.
pub(crate) struct Pooled<T: Send + 'static, S> {
    pub(crate) conn: Live<T>,
    /// The connector's state of this connection ([`TenantConnector::Session`]).
    pub(crate) session: S,
    /// Set when the connection must not be reused (reset failed, pool closed, evicted).
    pub(crate) broken: bool,
    /// The tenant whose scope the connection carries (shared pools): set once a scope is
    /// applied, cleared by a reset.
    pub(crate) scoped: Option<TenantId>,
    /// When it was last returned keeping its scope, on the engine's clock.
    pub(crate) kept_at_ms: u64,
    // Taken out when the connection drops, and dropped once the connection is closed: a
    // permit or a cluster slot comes back only then.
    held: Option<Box<Held<T>>>,
}

/// What a connection holds for its whole life and uses only when it closes. Boxed: `bb8` moves
/// an idle connection out of its queue on every checkout and back on every return, and with
/// many pools each byte of it read there is cold.
pub(crate) struct Held<T> {
    state: Arc<PoolState>,
    counters: Arc<Counters>,
    close: Closer<T>,
    _tenant_permit: Option<OwnedSemaphorePermit>,
    _permit: OwnedSemaphorePermit,
    /// The slot of the server's cluster budget, when it has one.
    cluster: Option<ClusterSlot>,
}

impl<T: Send + 'static> Held<T> {
    /// Runs `closing` (a close, or a connect to finish and close), bounded by
    /// [`CLOSE_TIMEOUT`], then drops what the connection held. Inline when it is done at
    /// its first poll; on a spawned task otherwise; outside a runtime `closing` is dropped
    /// unpolled (its connection with it) before the permits.
    fn release_after(self: Box<Self>, mut closing: BoxFuture<'static, ()>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            drop(closing);
            drop(self);
            return;
        };
        if (&mut closing).now_or_never().is_some() {
            drop(self);
            return;
        }
        runtime.spawn(async move {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, closing).await;
            drop(self);
        });
    }
}

impl<T: Send + 'static, S> Drop for Pooled<T, S> {
    fn drop(&mut self) {
        let Some(held) = self.held.take() else {
            return;
        };
        held.state.closed_one();
        held.counters.connection_closed();
        let closing = match self.conn.0.take() {
            Some(conn) => (held.close)(conn),
            None => futures::future::ready(()).boxed(),
        };
        held.release_after(closing);
    }
}

impl<T: Send + 'static, S> Pooled<T, S> {
    /// The cluster slot the connection holds, if any.
    pub(crate) fn cluster_slot(&self) -> Option<&ClusterSlot> {
        self.held.as_ref().and_then(|held| held.cluster.as_ref())
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
        let held = Box::new(Held {
            state: Arc::clone(&self.state),
            counters: Arc::clone(&self.counters),
            close: Arc::clone(&self.close),
            _tenant_permit: tenant_permit,
            _permit: permit,
            cluster,
        });
        let manager = Arc::clone(&self.manager);
        let mut connect = async move { manager.connect().await }.boxed();
        let conn = tokio::select! {
            conn = timeout_at(deadline.into(), &mut connect) => match conn {
                Ok(Ok(conn)) => conn,
                // No session was set up: the permits go back now.
                Ok(Err(err)) => return Err(ConnectError::Loud(err.into())),
                Err(_) => {
                    abandon(connect, held);
                    return Err(ConnectError::Loud(Error::unavailable(
                        "database",
                        "connect timed out",
                    )));
                }
            },
            () = &mut closing => {
                abandon(connect, held);
                return Err(quiet());
            }
        };
        self.state.opened();
        self.counters.connection_opened();
        Ok(Pooled {
            conn: Live(Some(conn)),
            session: C::Session::default(),
            broken: false,
            scoped: None,
            kept_at_ms: 0,
            held: Some(held),
        })
    }
}

/// A connect given up on mid-way (timed out, or its pool closing) may already have a session
/// on the server: it is finished and closed before its permits and slot go back.
fn abandon<T, E>(connect: BoxFuture<'static, Result<T, E>>, held: Box<Held<T>>)
where
    T: Send + 'static,
    E: Send + 'static,
{
    let close = Arc::clone(&held.close);
    let closing = async move {
        if let Ok(conn) = connect.await {
            close(conn).await;
        }
    }
    .boxed();
    held.release_after(closing);
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
            || conn.cluster_slot().is_some_and(ClusterSlot::over)
            || self.manager.has_broken(&mut conn.conn)
    }
}
