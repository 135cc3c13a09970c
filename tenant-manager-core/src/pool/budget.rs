//! Permits: the global connection budget and the per-tenant caps.
//!
//! Every open connection holds one permit of the global budget for its whole life, and a
//! connection of a tenant pool also holds one permit of its tenant's slot. A checkout from a
//! shared pool holds a permit of the tenant's slot for as long as it is checked out. Caps are
//! therefore enforced by construction, never by counting after the fact.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use dashmap::DashMap;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::KeyHasher;
use super::state::PoolState;
use crate::domain::TenantId;

/// The global budget: `max_total` permits, handed out in FIFO order.
#[derive(Debug)]
pub(crate) struct Budget {
    permits: Arc<Semaphore>,
    /// Connects waiting for a permit, all pools together.
    waiters: AtomicU32,
    /// Woken when a connection goes idle while someone waits, so waiters look for a victim.
    idle: Notify,
}

impl Budget {
    pub(crate) fn new(max_total: u32) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_total as usize)),
            waiters: AtomicU32::new(0),
            idle: Notify::new(),
        }
    }

    pub(crate) fn try_acquire(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.permits).try_acquire_owned().ok()
    }

    /// Waits in line for a permit. Cancel-safe: dropping the future leaves the line.
    pub(crate) async fn acquire(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.permits).acquire_owned().await.ok()
    }

    /// Registers a connect of `pool` as waiting until the guard is dropped.
    pub(crate) fn wait<'a>(&'a self, pool: &'a PoolState) -> BudgetWait<'a> {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        pool.start_budget_wait();
        BudgetWait { budget: self, pool }
    }

    /// Whether a connect of a pool other than `pool` waits for a permit: a connection of
    /// `pool` being returned should then be closed to hand its permit over.
    pub(crate) fn wanted_elsewhere(&self, pool: &PoolState) -> bool {
        self.waiters.load(Ordering::SeqCst) > pool.budget_waiting()
    }

    /// Tells waiters that a connection went idle (so they may evict it).
    pub(crate) fn went_idle(&self) {
        if self.waiters.load(Ordering::SeqCst) > 0 {
            self.idle.notify_waiters();
        }
    }

    pub(crate) fn idle_notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.idle.notified()
    }
}

/// A connect waiting for the budget; see [`Budget::wait`].
#[derive(Debug)]
pub(crate) struct BudgetWait<'a> {
    budget: &'a Budget,
    pool: &'a PoolState,
}

impl Drop for BudgetWait<'_> {
    fn drop(&mut self) {
        self.pool.end_budget_wait();
        self.budget.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One tenant's cap: `cap` permits, shared by all pools that serve the tenant.
#[derive(Debug)]
pub(crate) struct Slot {
    permits: Arc<Semaphore>,
    cap: u32,
    /// Leases alive; a slot with no lease and every permit back is removed by the reaper.
    users: AtomicU32,
    /// Connects waiting for a permit of the slot (a pool of the tenant on one route while its
    /// pools on other routes hold every permit).
    waiters: AtomicU32,
}

impl Slot {
    fn is_unused(&self) -> bool {
        self.users.load(Ordering::SeqCst) == 0
            && self.permits.available_permits() >= self.cap as usize
    }

    /// Permits in use.
    pub(crate) fn in_use(&self) -> u32 {
        let available = u32::try_from(self.permits.available_permits()).unwrap_or(self.cap);
        self.cap.saturating_sub(available)
    }
}

/// A use of a tenant's [`Slot`]; keeps the slot in the registry while alive.
#[derive(Debug)]
pub(crate) struct SlotLease {
    slot: Arc<Slot>,
}

impl SlotLease {
    pub(crate) fn try_acquire(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.slot.permits).try_acquire_owned().ok()
    }

    /// Waits in line for a permit of the tenant. Cancel-safe.
    pub(crate) async fn acquire(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.slot.permits).acquire_owned().await.ok()
    }

    /// Registers a connect waiting for a permit of the slot until the guard is dropped.
    pub(crate) fn wait(&self) -> SlotWait<'_> {
        self.slot.waiters.fetch_add(1, Ordering::SeqCst);
        SlotWait { slot: &self.slot }
    }

    /// Whether a connect waits for a permit of the slot: a connection of the tenant's pools
    /// being returned should then be closed to hand its permit over.
    pub(crate) fn wanted(&self) -> bool {
        self.slot.waiters.load(Ordering::SeqCst) > 0
    }
}

/// A connect waiting for a tenant's slot; see [`SlotLease::wait`].
#[derive(Debug)]
pub(crate) struct SlotWait<'a> {
    slot: &'a Slot,
}

impl Drop for SlotWait<'_> {
    fn drop(&mut self) {
        self.slot.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for SlotLease {
    fn drop(&mut self) {
        self.slot.users.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The slots of all tenants that hold or want connections.
#[derive(Debug)]
pub(crate) struct TenantSlots {
    slots: DashMap<TenantId, Arc<Slot>, KeyHasher>,
}

impl Default for TenantSlots {
    fn default() -> Self {
        Self {
            slots: DashMap::with_hasher(KeyHasher::default()),
        }
    }
}

impl TenantSlots {
    /// Leases `tenant`'s slot, creating it with `cap` permits. An existing slot keeps the cap
    /// it was created with until it is swept (a quota change applies from then on).
    pub(crate) fn lease(&self, tenant: TenantId, cap: u32) -> SlotLease {
        // The lease is counted while the shard is locked, so `sweep` never removes a slot
        // that a lease is being taken on.
        if let Some(slot) = self.slots.get(&tenant) {
            slot.users.fetch_add(1, Ordering::SeqCst);
            return SlotLease {
                slot: Arc::clone(&slot),
            };
        }
        let slot = self.slots.entry(tenant).or_insert_with(|| {
            Arc::new(Slot {
                permits: Arc::new(Semaphore::new(cap as usize)),
                cap,
                users: AtomicU32::new(0),
                waiters: AtomicU32::new(0),
            })
        });
        slot.users.fetch_add(1, Ordering::SeqCst);
        SlotLease {
            slot: Arc::clone(&slot),
        }
    }

    /// Removes slots nobody uses.
    pub(crate) fn sweep(&self) {
        self.slots.retain(|_, slot| !slot.is_unused());
    }

    /// Checkouts and connections held against `tenant`'s cap.
    pub(crate) fn in_use(&self, tenant: TenantId) -> u32 {
        self.slots.get(&tenant).map_or(0, |slot| slot.in_use())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_cap_a_tenant_and_are_swept_when_unused() {
        let slots = TenantSlots::default();
        let tenant = TenantId::new();
        let lease = slots.lease(tenant, 2);
        let a = lease.try_acquire();
        let b = lease.try_acquire();
        assert!(a.is_some() && b.is_some());
        assert!(lease.try_acquire().is_none());
        assert_eq!(slots.in_use(tenant), 2);
        let second = slots.lease(tenant, 9);
        assert!(second.try_acquire().is_none(), "the slot keeps its cap");
        drop((a, b, second));
        slots.sweep();
        assert_eq!(slots.slots.len(), 1, "a leased slot stays");
        drop(lease);
        slots.sweep();
        assert!(slots.slots.is_empty());
    }
}
