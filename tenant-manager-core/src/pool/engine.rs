//! The engine's core: the registry of pools, the checkout path, eviction and reaping.

use std::pin::pin;
use std::sync::Arc;
use std::time::Instant;

use bb8::{ErrorSink, ManageConnection, Pool, QueueStrategy, RunError};
use dashmap::DashMap;
use futures::FutureExt;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::timeout_at;
use tokio_util::sync::DropGuard;

use super::affinity;
use super::budget::{Budget, TenantSlots};
use super::checkout::{ActiveEntry, Checkout, PoolConn, TenantHold};
use super::managed::BudgetedManager;
use super::metrics::{Counters, ScopeOutcome};
use super::state::{Clock, FailureMark, PoolState};
use super::{KeyHasher, PoolConfig, PoolKey, TenantConnector};
use crate::domain::{Tenant, TenantStatus};
use crate::error::{Error, Result};

/// One pool of the registry.
pub(crate) struct Entry<C: TenantConnector> {
    pub(crate) state: Arc<PoolState>,
    pub(crate) pool: Pool<BudgetedManager<C>>,
    pub(crate) manager: Arc<C::Manager>,
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
    fn drain_idle(&self) -> u32 {
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
    async fn wait(
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
    pub(crate) connector: C,
    pub(crate) config: PoolConfig,
    pub(crate) pools: DashMap<PoolKey, Arc<Entry<C>>, KeyHasher>,
    pub(crate) slots: TenantSlots,
    pub(crate) budget: Budget,
    pub(crate) counters: Arc<Counters>,
    pub(crate) clock: Clock,
    /// Stops the reaper when the engine goes away.
    _reaper: DropGuard,
}

impl<C: TenantConnector> Inner<C> {
    pub(crate) fn new(connector: C, config: PoolConfig, reaper: DropGuard) -> Self {
        Self {
            _reaper: reaper,
            connector,
            budget: Budget::new(config.max_total),
            config,
            pools: DashMap::with_hasher(KeyHasher::default()),
            slots: TenantSlots::default(),
            counters: Arc::new(Counters::new()),
            clock: Clock::new(),
        }
    }

    /// A connection scoped to `tenant`, within the acquire timeout.
    pub(crate) async fn checkout(self: &Arc<Self>, tenant: &Tenant) -> Result<Checkout<C>> {
        ensure_serving(tenant)?;
        let mut watch = Stopwatch::new(self.config.acquire_timeout);
        let key = self.connector.pool_key(tenant)?;
        if key.tenant().is_some_and(|id| id != tenant.id) {
            return Err(Error::internal(
                "the connector keyed a tenant pool by another tenant",
            ));
        }
        let cap = self.config.cap_for(tenant)?;
        // Shared pools: the tenant's cap is a permit held for the checkout, taken before
        // touching the shared pool, so a tenant at its cap waits on its own line.
        let mut hold = match &key {
            PoolKey::Tenant(_) => None,
            PoolKey::Shared(_) => {
                let lease = self.slots.lease(tenant.id, cap);
                let permit = match lease.try_acquire() {
                    Some(permit) => permit,
                    None => match by_deadline(|| watch.deadline(), lease.acquire()).await {
                        Some(Some(permit)) => permit,
                        _ => return Err(self.exhausted(&mut watch)),
                    },
                };
                Some(TenantHold {
                    _permit: permit,
                    _lease: lease,
                })
            }
        };
        // Shared pools with affinity: connections kept since then may be reused as they are.
        let kept_since = self.kept_since(&key);
        loop {
            // Boxed slow paths keep the checkout future small and the hot path free of
            // timers and clock reads.
            let active = match self.lookup(&key) {
                Some(active) => active,
                None => Box::pin(self.create(&key, tenant, cap)).await?,
            };
            let entry = &*active.entry;
            // Marked before the first ask: a connect that bb8 starts for it may fail at once.
            let mark = entry.state.failure.mark();
            let idle = match kept_since {
                Some(since) => affinity::pick(entry, tenant.id, since),
                None => entry.try_get(),
            };
            let got = match idle {
                Some(got) => got,
                None => Box::pin(entry.wait(mark, watch.deadline())).await,
            };
            let conn = match got {
                Ok(conn) => conn,
                Err(GetError::Closed) => continue,
                Err(GetError::TimedOut) => return Err(self.exhausted(&mut watch)),
                Err(GetError::Failed(err)) => return Err(err),
            };
            let reused = kept_since.is_some_and(|since| affinity::carries(&conn, tenant.id, since));
            let mut checkout = Checkout::new(Arc::clone(self), active, conn);
            let checked = if reused {
                self.counters.scoped(ScopeOutcome::Reused);
                Some(Ok(()))
            } else if key.is_shared() {
                // Cleared first: a scope change that fails or is cancelled leaves the
                // connection unhanded, and it is discarded.
                let carried = checkout.take_scoped();
                self.counters.scoped(match carried {
                    Some(_) => ScopeOutcome::Switched,
                    None => ScopeOutcome::Set,
                });
                let (conn, session) = checkout.scope_parts();
                let scope = self.connector.apply_scope(conn, session, tenant, carried);
                by_deadline(|| watch.deadline(), scope).await
            } else if self.config.test_on_checkout {
                let (manager, conn) = checkout.test_parts();
                by_deadline(|| watch.deadline(), manager.is_valid(conn))
                    .await
                    .map(|valid| valid.map_err(Into::into))
            } else {
                Some(Ok(()))
            };
            match checked {
                Some(Ok(())) if !checkout.pool_closed() => {
                    if key.is_shared() {
                        checkout.set_scoped(tenant.id);
                    }
                    checkout.hand_out(hold.take());
                    return Ok(checkout);
                }
                // Closed since: never hand out a connection of a closed pool.
                Some(Ok(())) => continue,
                // A broken connection (say, after a server restart): the checkout is dropped
                // unhanded, which discards it; try another one.
                Some(Err(err)) if err.is_retryable() || !key.is_shared() => {
                    if Instant::now() >= watch.deadline() {
                        return Err(err);
                    }
                }
                Some(Err(err)) => return Err(err),
                None => return Err(self.exhausted(&mut watch)),
            }
        }
    }

    /// For a shared pool with affinity on: the engine-clock time from which a kept
    /// connection still counts as carrying its tenant's scope.
    fn kept_since(&self, key: &PoolKey) -> Option<u64> {
        let window = self.affinity_ms()?;
        key.is_shared()
            .then(|| self.clock.now_ms().saturating_sub(window))
    }

    /// The affinity window in milliseconds, `None` when affinity is off.
    pub(crate) fn affinity_ms(&self) -> Option<u64> {
        let window = self.config.scope_affinity;
        (!window.is_zero()).then(|| u64::try_from(window.as_millis()).unwrap_or(u64::MAX))
    }

    fn exhausted(&self, watch: &mut Stopwatch) -> Error {
        self.counters.timed_out();
        Error::PoolExhausted {
            waited: watch.waited(),
        }
    }

    /// The pool for `key`, if open; returned with its `active` count raised. (Its LRU
    /// clock moves when a connection comes back: a pool with a checkout out is never a
    /// victim anyway.)
    fn lookup(&self, key: &PoolKey) -> Option<ActiveEntry<C>> {
        let entry = self.pools.get(key)?;
        // Raised while the shard is locked: eviction and the reaper remove a pool only
        // under the same lock and only when `active` is 0.
        entry.state.enter();
        Some(ActiveEntry::entered(Arc::clone(&entry)))
    }

    /// Opens the pool for `key` (or takes the one another acquire opened meanwhile);
    /// returned with its `active` count raised.
    async fn create(
        self: &Arc<Self>,
        key: &PoolKey,
        tenant: &Tenant,
        cap: u32,
    ) -> Result<ActiveEntry<C>> {
        let manager = Arc::new(self.connector.manager(tenant, key).await?);
        let state = Arc::new(PoolState::new(key.clone(), self.clock.now_ms()));
        let budgeted = BudgetedManager {
            manager: Arc::clone(&manager),
            state: Arc::clone(&state),
            engine: Arc::downgrade(self),
            counters: Arc::clone(&self.counters),
            lease: key.tenant().map(|id| self.slots.lease(id, cap)),
        };
        let builder = Pool::builder()
            .error_sink(Box::new(SettleSink(Arc::clone(&state))))
            .min_idle(None)
            .test_on_check_out(false)
            .max_lifetime(None)
            .connection_timeout(self.config.acquire_timeout)
            .retry_connection(false)
            .queue_strategy(QueueStrategy::Lifo);
        let pool = match key {
            PoolKey::Tenant(_) => builder.max_size(cap).idle_timeout(None),
            // A shared pool lives long: bb8 closes its connections idle for the idle timeout.
            PoolKey::Shared(_) => builder
                .max_size(self.config.max_total)
                .idle_timeout(Some(self.config.idle_timeout))
                .reaper_rate(self.config.reaper_interval),
        }
        .build_unchecked(budgeted);
        let fresh = Arc::new(Entry {
            state,
            pool,
            manager,
        });
        let entry = match self.pools.entry(key.clone()) {
            dashmap::Entry::Occupied(found) => {
                found.get().state.enter();
                Arc::clone(found.get())
            }
            dashmap::Entry::Vacant(vacant) => {
                fresh.state.enter();
                vacant.insert(Arc::clone(&fresh));
                self.counters.pool_opened();
                fresh
            }
        };
        Ok(ActiveEntry::entered(entry))
    }

    /// A permit of the global budget for a connect of `pool`, by `deadline`: at once if one
    /// is free; else after closing idle connections of the least recently used other pools;
    /// else in FIFO order as permits come back. `None` when the deadline passes.
    pub(crate) async fn reserve(
        &self,
        pool: &PoolState,
        deadline: Instant,
    ) -> Option<OwnedSemaphorePermit> {
        if let Some(permit) = self.budget.try_acquire() {
            return Some(permit);
        }
        self.counters.waited();
        let _waiting = self.budget.wait(pool);
        let mut acquire = pin!(self.budget.acquire());
        let mut sleep = pin!(tokio::time::sleep_until(deadline.into()));
        loop {
            let mut went_idle = pin!(self.budget.idle_notified());
            went_idle.as_mut().enable();
            self.evict_one(pool);
            tokio::select! {
                biased;
                permit = acquire.as_mut() => return permit,
                () = went_idle.as_mut() => {}
                () = sleep.as_mut() => return None,
            }
        }
    }

    /// Closes idle connections of the least recently used pool other than `except` that has
    /// any: the whole pool when nobody uses it, else one connection. Returns whether
    /// something was closed.
    fn evict_one(&self, except: &PoolState) -> bool {
        let mut victim: Option<(u64, Arc<Entry<C>>)> = None;
        for item in &self.pools {
            let state = &item.value().state;
            if std::ptr::eq(&**state, except) || state.idle() == 0 {
                continue;
            }
            let last_used = state.last_used();
            if victim.as_ref().is_none_or(|(lru, _)| last_used < *lru) {
                victim = Some((last_used, Arc::clone(item.value())));
            }
        }
        let Some((_, victim)) = victim else {
            return false;
        };
        let open = victim.state.open();
        if self.remove_if(&victim, |state| state.active() == 0) {
            self.counters.evicted(u64::from(open));
            return true;
        }
        match victim.pool.get_owned().now_or_never() {
            Some(Ok(mut conn)) => {
                conn.broken = true;
                self.counters.evicted(1);
                true
            }
            _ => false,
        }
    }

    /// Removes `entry` from the registry if it is still there and `unused` holds (checked
    /// under the shard lock), then closes it. Its idle connections close when the last
    /// reference to the pool goes.
    fn remove_if(&self, entry: &Arc<Entry<C>>, unused: impl Fn(&PoolState) -> bool) -> bool {
        let removed = self.pools.remove_if(&entry.state.key, |_, found| {
            Arc::ptr_eq(found, entry) && unused(&found.state)
        });
        match removed {
            Some((_, removed)) => {
                self.retire(&removed);
                true
            }
            None => false,
        }
    }

    /// Closes a pool just removed from the registry: wakes its waiters (they look the pool up
    /// again) and closes its idle connections.
    fn retire(&self, removed: &Entry<C>) {
        self.counters.pool_removed();
        removed.state.close();
        removed.drain_idle();
    }

    /// Closes the pool under `key`, if any. Checked-out connections close when returned.
    pub(crate) fn close(&self, key: &PoolKey) -> bool {
        match self.pools.remove(key) {
            Some((_, removed)) => {
                self.retire(&removed);
                true
            }
            None => false,
        }
    }

    /// Closes every pool.
    pub(crate) fn close_all(&self) {
        let keys: Vec<PoolKey> = self.pools.iter().map(|item| item.key().clone()).collect();
        for key in keys {
            self.close(&key);
        }
    }

    /// One pass of the reaper: closes pools nobody used for the idle timeout, drops empty
    /// unused pools and unused tenant slots, resets idle connections kept with a scope for
    /// longer than the affinity window.
    pub(crate) fn reap(self: &Arc<Self>) {
        let now = self.clock.now_ms();
        let idle_ms = u64::try_from(self.config.idle_timeout.as_millis()).unwrap_or(u64::MAX);
        let stale = |state: &PoolState| {
            state.active() == 0 && now.saturating_sub(state.last_used()) >= idle_ms
        };
        let empty = |state: &PoolState| state.active() == 0 && state.open() == 0;
        let candidates: Vec<Arc<Entry<C>>> = self
            .pools
            .iter()
            .filter(|item| stale(&item.state) || empty(&item.state))
            .map(|item| Arc::clone(item.value()))
            .collect();
        for entry in candidates {
            let timed_out = stale(&entry.state);
            if self.remove_if(&entry, |state| stale(state) || empty(state)) && timed_out {
                self.counters.idle_pool_closed();
            }
        }
        self.slots.sweep();
        if let Some(window) = self.affinity_ms() {
            let kept_since = now.saturating_sub(window);
            let shared: Vec<Arc<Entry<C>>> = self
                .pools
                .iter()
                .filter(|item| item.key().is_shared())
                .map(|item| Arc::clone(item.value()))
                .collect();
            for entry in shared {
                affinity::sweep(self, &entry, kept_since);
            }
        }
    }
}

/// Told by `bb8` about every failed background connect, after it gave the connect's slot
/// back: the moment waiters can usefully look again.
#[derive(Debug, Clone)]
struct SettleSink(Arc<PoolState>);

impl ErrorSink<Error> for SettleSink {
    fn sink(&self, _error: Error) {
        self.0.failure.settle();
    }

    fn boxed_clone(&self) -> Box<dyn ErrorSink<Error>> {
        Box::new(self.clone())
    }
}

/// `fut` by `deadline`, `None` when the deadline passes first. The deadline is asked for,
/// and the timer armed, only if `fut` does not complete at once: the common case costs no
/// clock read and no timer registration.
async fn by_deadline<F: std::future::Future>(
    deadline: impl FnOnce() -> Instant,
    fut: F,
) -> Option<F::Output> {
    let mut fut = pin!(fut);
    if let Some(output) = fut.as_mut().now_or_never() {
        return Some(output);
    }
    Box::pin(timeout_at(deadline().into(), fut)).await.ok()
}

/// When an acquire started, read only once it has to wait: the hot path (an idle
/// connection at hand) reads no clock. A deadline is the start plus the acquire timeout.
#[derive(Debug, Clone, Copy)]
struct Stopwatch {
    started: Option<Instant>,
    timeout: std::time::Duration,
}

impl Stopwatch {
    fn new(timeout: std::time::Duration) -> Self {
        Self {
            started: None,
            timeout,
        }
    }

    fn started(&mut self) -> Instant {
        *self.started.get_or_insert_with(Instant::now)
    }

    fn deadline(&mut self) -> Instant {
        self.started() + self.timeout
    }

    fn waited(&mut self) -> std::time::Duration {
        self.started().elapsed()
    }
}

/// Only `Active` tenants get connections.
fn ensure_serving(tenant: &Tenant) -> Result<()> {
    match tenant.status {
        TenantStatus::Active => Ok(()),
        TenantStatus::Suspended => Err(Error::Suspended { tenant: tenant.id }),
        status => Err(Error::NotReady {
            tenant: tenant.id,
            status,
        }),
    }
}
