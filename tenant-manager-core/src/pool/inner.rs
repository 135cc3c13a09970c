//! The engine's shared state, the bottom of the pool room: the registry of pools
//! ([`Inner`]), one pool ([`Entry`]), the `bb8` manager of a pool ([`BudgetedManager`], which
//! points back at the engine) and a connection of one ([`PoolConn`]). These types refer to each
//! other, so they live together here; what the engine does with them is in the files above:
//! `engine` (the checkout path), `evict` (making room and reaping), `affinity`, `checkout`
//! and `managed` (the `bb8` manager's behaviour).

use std::pin::pin;
use std::sync::{Arc, Weak};
use std::time::Instant;

use bb8::{Pool, PooledConnection, RunError};
use dashmap::DashMap;
use futures::FutureExt;
use tokio_util::sync::DropGuard;

use super::budget::{Budget, SlotLease, TenantSlots};
use super::cluster::Cluster;
use super::metrics::Counters;
use super::state::{Clock, FailureMark, PoolState};
use super::{ConnectionOf, KeyHasher, PoolConfig, PoolKey, TenantConnector};
use crate::domain::ServerId;
use crate::error::{Error, Result};

/// Closes a connection of a pool: the connector's [`close`](TenantConnector::close).
pub(crate) type Closer<T> = Arc<dyn Fn(T) -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

/// A bb8 connection of one of the engine's pools.
pub(crate) type PoolConn<C> = PooledConnection<'static, BudgetedManager<C>>;

/// The manager of one pool: the connector's manager behind the permits.
pub(crate) struct BudgetedManager<C: TenantConnector> {
    pub(crate) manager: Arc<C::Manager>,
    /// The connector's [`close`](TenantConnector::close), for each connection to take along.
    pub(crate) close: Closer<ConnectionOf<C>>,
    pub(crate) state: Arc<PoolState>,
    pub(crate) engine: Weak<Inner<C>>,
    pub(crate) counters: Arc<Counters>,
    /// For a tenant pool: the tenant's slot, one permit per open connection.
    pub(crate) lease: Option<SlotLease>,
    /// The database server the pool connects to (its tenants' `placement.server`).
    pub(crate) server: ServerId,
}

/// One pool of the registry.
pub(crate) struct Entry<C: TenantConnector> {
    pub(crate) state: Arc<PoolState>,
    /// The database server the pool connects to.
    pub(crate) server: ServerId,
    pub(crate) pool: Pool<BudgetedManager<C>>,
    pub(crate) manager: Arc<C::Manager>,
    /// For a pool of one tenant (on any route): the tenant's slot, to see whether another pool
    /// of the tenant waits for a permit of it.
    pub(crate) slot: Option<SlotLease>,
}

fn map_run_error<C: TenantConnector>(
    result: Result<PoolConn<C>, RunError<Error>>,
) -> Result<PoolConn<C>, GetError> {
    result.map_err(|err| match err {
        RunError::User(err) => GetError::Failed(err),
        RunError::TimedOut => GetError::TimedOut,
    })
}

/// Why waiting on a pool ended without a connection.
pub(crate) enum GetError {
    /// The pool was closed: look it up again.
    Closed,
    TimedOut,
    Failed(Error),
}

impl<C: TenantConnector> Entry<C> {
    /// Closes the idle connections of a closed pool now, instead of when its last checkout
    /// returns. Returns how many were closed. Outside a tokio runtime (bb8 arms a timer on
    /// every checkout) nothing is drained here: the idle connections close when the last
    /// checkout of the pool returns.
    pub(crate) fn drain_idle(&self) -> u32 {
        let mut closed = 0;
        if tokio::runtime::Handle::try_current().is_err() {
            return closed;
        }
        while self.pool.state().idle_connections > 0 {
            match self.pool.get_owned().now_or_never() {
                Some(Ok(mut conn)) => {
                    conn.broken = true;
                    closed += 1;
                }
                _ => break,
            }
        }
        closed
    }

    /// An idle connection of this pool, if one is there right now (no timer, no wake-up
    /// registration: the hot path).
    pub(crate) fn try_get(&self) -> Option<Result<PoolConn<C>, GetError>> {
        self.pool.get_owned().now_or_never().map(map_run_error)
    }

    /// Idle connections in `bb8`'s queue right now.
    pub(crate) fn idle_now(&self) -> u32 {
        self.pool.state().idle_connections
    }

    /// A connection of this pool, by `deadline`, waiting as needed. Fails fast with the
    /// cause when a connect of this pool is refused after `mark`.
    pub(crate) async fn wait(
        &self,
        mut mark: FailureMark,
        deadline: Instant,
    ) -> Result<PoolConn<C>, GetError> {
        let failures = &self.state.failure;
        let mut get = pin!(self.pool.get_owned());
        let mut closing = pin!(self.state.closing());
        closing.as_mut().enable();
        let mut sleep = pin!(tokio::time::sleep_until(deadline.into()));
        loop {
            let mut settled = pin!(failures.notified());
            settled.as_mut().enable();
            if self.state.is_closed() {
                return Err(GetError::Closed);
            }
            if failures.settled_since(mark) {
                if let Some(err) = failures.error_since(mark) {
                    return Err(GetError::Failed(err));
                }
                // A connect gave up without an error for us (no permit in time for an
                // earlier waiter): ask bb8 again, which starts a connect for this waiter.
                mark = failures.mark();
                get.set(self.pool.get_owned());
            }
            tokio::select! {
                biased;
                result = get.as_mut() => return map_run_error(result),
                () = closing.as_mut() => return Err(GetError::Closed),
                () = settled.as_mut() => {}
                () = sleep.as_mut() => return Err(GetError::TimedOut),
            }
        }
    }
}

/// Everything the engine shares between its handle, its pools and its background tasks.
pub(crate) struct Inner<C: TenantConnector> {
    /// Shared with every pool's [`Closer`], which may outlive the engine.
    pub(crate) connector: Arc<C>,
    pub(crate) config: PoolConfig,
    pub(crate) pools: DashMap<PoolKey, Arc<Entry<C>>, KeyHasher>,
    pub(crate) slots: TenantSlots,
    pub(crate) budget: Budget,
    pub(crate) counters: Arc<Counters>,
    pub(crate) clock: Clock,
    /// The cluster budget of each budgeted server, when the engine shares them.
    pub(crate) cluster: Option<Arc<Cluster>>,
    /// Stops the reaper when the engine goes away.
    _reaper: DropGuard,
}

impl<C: TenantConnector> Inner<C> {
    pub(crate) fn new(
        connector: C,
        config: PoolConfig,
        cluster: Option<Arc<Cluster>>,
        reaper: DropGuard,
    ) -> Self {
        Self {
            cluster,
            _reaper: reaper,
            connector: Arc::new(connector),
            budget: Budget::new(config.max_total),
            config,
            pools: DashMap::with_hasher(KeyHasher::default()),
            slots: TenantSlots::default(),
            counters: Arc::new(Counters::new()),
            clock: Clock::new(),
        }
    }
}
