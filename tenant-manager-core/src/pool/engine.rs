//! The checkout path: a connection scoped to a tenant, from its pool (opened on first use),
//! within the acquire timeout.

use std::pin::pin;
use std::sync::Arc;
use std::time::Instant;

use bb8::{ErrorSink, ManageConnection, Pool, QueueStrategy};
use futures::FutureExt;
use tokio::time::timeout_at;

use super::affinity;
use super::checkout::{ActiveEntry, Checkout, TenantHold};
use super::inner::Closer;
use super::inner::{BudgetedManager, Entry, GetError, Inner};
use super::metrics::ScopeOutcome;
use super::state::PoolState;
use super::{ConnectionOf, PoolKey, TenantConnector};
use crate::domain::{Tenant, TenantStatus};
use crate::error::{Error, Result};

impl<C: TenantConnector> Inner<C> {
    /// A connection scoped to `tenant`, within the acquire timeout.
    pub(crate) async fn checkout(self: &Arc<Self>, tenant: &Tenant) -> Result<Checkout<C>> {
        ensure_serving(tenant)?;
        let key = self.connector.pool_key(tenant)?;
        self.checkout_on(tenant, key).await
    }

    /// A read-only connection scoped to `tenant`, from the pool the connector's
    /// [`read_key`](TenantConnector::read_key) names; when that pool's backend cannot be
    /// reached and the connector routes elsewhere since, once more there.
    pub(crate) async fn checkout_read(self: &Arc<Self>, tenant: &Tenant) -> Result<Checkout<C>> {
        ensure_serving(tenant)?;
        let key = self.connector.read_key(tenant)?;
        if key == self.connector.pool_key(tenant)? {
            return Err(Error::internal(
                "the connector routed reads to the read-write pool",
            ));
        }
        match Box::pin(self.checkout_on(tenant, key.clone())).await {
            Err(err) if err.is_retryable() && self.connector.read_unavailable(&key, &err) => {
                // Its idle connections are likely dead too.
                self.close(&key);
                let again = self.connector.read_key(tenant)?;
                Box::pin(self.checkout_on(tenant, again)).await
            }
            done => done,
        }
    }

    /// A connection scoped to `tenant` from the pool under `key`.
    async fn checkout_on(self: &Arc<Self>, tenant: &Tenant, key: PoolKey) -> Result<Checkout<C>> {
        let mut watch = Stopwatch::new(self.config.acquire_timeout);
        if key.tenant().is_some_and(|id| id != tenant.id) {
            return Err(Error::internal(
                "the connector keyed a tenant pool by another tenant",
            ));
        }
        let cap = self.config.cap_for(tenant)?;
        // Shared pools: the tenant's cap is a permit held for the checkout, taken before
        // touching the shared pool, so a tenant at its cap waits on its own line.
        let mut hold = match &key {
            PoolKey::Tenant(_) | PoolKey::TenantRoute(_) => None,
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
        let connector = Arc::clone(&self.connector);
        let close: Closer<ConnectionOf<C>> = Arc::new(move |conn| {
            let connector = Arc::clone(&connector);
            async move { connector.close(conn).await }.boxed()
        });
        let budgeted = BudgetedManager {
            manager: Arc::clone(&manager),
            close,
            state: Arc::clone(&state),
            engine: Arc::downgrade(self),
            counters: Arc::clone(&self.counters),
            lease: key.tenant().map(|id| self.slots.lease(id, cap)),
            server: tenant.placement.server.clone(),
        };
        let slot = key.tenant().map(|id| self.slots.lease(id, cap));
        let builder = Pool::builder()
            .error_sink(Box::new(SettleSink(Arc::clone(&state))))
            .min_idle(None)
            .test_on_check_out(false)
            .max_lifetime(None)
            .connection_timeout(self.config.acquire_timeout)
            .retry_connection(false)
            .queue_strategy(QueueStrategy::Lifo);
        let pool = match key {
            PoolKey::Tenant(_) | PoolKey::TenantRoute(_) => {
                builder.max_size(cap).idle_timeout(None)
            }
            // A shared pool lives long: bb8 closes its connections idle for the idle timeout.
            PoolKey::Shared(_) => builder
                .max_size(self.config.max_total)
                .idle_timeout(Some(self.config.idle_timeout))
                .reaper_rate(self.config.reaper_interval),
        }
        .build_unchecked(budgeted);
        let fresh = Arc::new(Entry {
            state,
            server: tenant.placement.server.clone(),
            pool,
            manager,
            slot,
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

/// Only `Active` tenants get connections, and `Moving` ones (their reads go on; the request
/// path refuses their writes).
fn ensure_serving(tenant: &Tenant) -> Result<()> {
    match tenant.status {
        TenantStatus::Active | TenantStatus::Moving => Ok(()),
        TenantStatus::Suspended => Err(Error::Suspended { tenant: tenant.id }),
        status => Err(Error::NotReady {
            tenant: tenant.id,
            status,
        }),
    }
}
