//! Making room and cleaning up: a connect that finds the global budget spent closes idle
//! connections of the least recently used other pool, and the reaper closes pools idle for the
//! idle timeout, drops unused slots and resets scopes kept past the affinity window.

use std::pin::pin;
use std::sync::Arc;
use std::time::Instant;

use futures::FutureExt;
use tokio::sync::OwnedSemaphorePermit;

use super::affinity;
use super::inner::{Entry, Inner};
use super::state::PoolState;
use super::{PoolKey, TenantConnector};
use crate::domain::ServerId;
use crate::domain::TenantId;

impl<C: TenantConnector> Inner<C> {
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
        self.evict_where(except, |_| true)
    }

    /// Closes an idle connection (or a whole unused pool) of the least recently used pool
    /// other than `except` on `server`: its slot of the server's cluster budget comes back.
    pub(crate) fn evict_on(&self, server: &ServerId, except: &PoolState) -> bool {
        self.evict_where(except, |entry| entry.server == *server)
    }

    /// Closes every idle connection of the pools on `server` (the instance holds more of its
    /// cluster budget than it may).
    pub(crate) fn close_idle_on(&self, server: &ServerId) {
        let entries: Vec<Arc<Entry<C>>> = self
            .pools
            .iter()
            .filter(|item| item.value().server == *server)
            .map(|item| Arc::clone(item.value()))
            .collect();
        for entry in entries {
            let closed = entry.drain_idle();
            self.counters.evicted(u64::from(closed));
        }
    }

    fn evict_where(&self, except: &PoolState, wanted: impl Fn(&Entry<C>) -> bool) -> bool {
        let mut victim: Option<(u64, Arc<Entry<C>>)> = None;
        for item in &self.pools {
            let state = &item.value().state;
            if std::ptr::eq(&**state, except) || state.idle() == 0 || !wanted(item.value()) {
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

    /// Closes the idle connections of `tenant`'s own pools other than `except` (its pools on
    /// other routes), so their permits of the tenant's cap move on. A slow path: it walks the
    /// registry, and runs only when a connect finds the tenant's cap spent.
    pub(crate) fn evict_tenant_idle(&self, tenant: TenantId, except: &PoolState) {
        let mine: Vec<Arc<Entry<C>>> = self
            .pools
            .iter()
            .filter(|item| item.key().tenant() == Some(tenant))
            .filter(|item| !std::ptr::eq(&*item.value().state, except))
            .map(|item| Arc::clone(item.value()))
            .collect();
        for entry in mine {
            let closed = entry.drain_idle();
            if closed > 0 {
                self.counters.evicted(u64::from(closed));
            }
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

    /// Closes `tenant`'s pools on other routes ([`PoolKey::TenantRoute`]).
    pub(crate) fn close_routes(&self, tenant: TenantId) {
        let keys: Vec<PoolKey> = self
            .pools
            .iter()
            .filter(|item| matches!(item.key(), PoolKey::TenantRoute(r) if r.tenant == tenant))
            .map(|item| item.key().clone())
            .collect();
        for key in keys {
            self.close(&key);
        }
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
