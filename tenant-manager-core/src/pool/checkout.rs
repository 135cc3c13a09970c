//! The checkout guard: hands a connection to the caller and takes it back on drop.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;

use super::affinity;
use super::budget::SlotLease;
use super::inner::{Entry, Inner, PoolConn};
use super::{ConnectionOf, TenantConnector};
use crate::domain::TenantId;

/// An entry of the registry held by an acquire or a checkout: while it lives the pool's
/// `active` count is raised, so the pool is never evicted or reaped under it.
pub(crate) struct ActiveEntry<C: TenantConnector> {
    pub(crate) entry: Arc<Entry<C>>,
}

impl<C: TenantConnector> ActiveEntry<C> {
    /// Wraps an entry whose `active` count the caller has just raised.
    pub(crate) fn entered(entry: Arc<Entry<C>>) -> Self {
        Self { entry }
    }
}

impl<C: TenantConnector> Drop for ActiveEntry<C> {
    fn drop(&mut self) {
        self.entry.state.leave();
    }
}

/// What a shared-pool checkout holds against its tenant's cap.
pub(crate) struct TenantHold {
    pub(crate) _permit: OwnedSemaphorePermit,
    pub(crate) _lease: SlotLease,
}

/// A connection lent out with the pool entry it belongs to.
struct Lent<C: TenantConnector> {
    conn: PoolConn<C>,
    active: ActiveEntry<C>,
}

/// A checked-out connection.
///
/// On drop: a connection that was never handed out (its acquire was cancelled or its
/// scope could not be set) is discarded; a connection of a closed pool is discarded; a
/// connection of a shared pool keeps its tenant's scope when affinity is on and the connector
/// says it was left clean, else it is reset on a spawned task and discarded if the reset
/// fails or cannot run; a connection that another pool's connect is waiting for is closed so its
/// permit moves on. Otherwise it goes back to its pool's idle queue.
pub(crate) struct Checkout<C: TenantConnector> {
    lent: Option<Lent<C>>,
    inner: Arc<Inner<C>>,
    hold: Option<TenantHold>,
    handed_out: bool,
}

impl<C: TenantConnector> Checkout<C> {
    pub(crate) fn new(inner: Arc<Inner<C>>, active: ActiveEntry<C>, conn: PoolConn<C>) -> Self {
        active.entry.state.checked_out();
        inner.counters.checked_out();
        Self {
            lent: Some(Lent { conn, active }),
            inner,
            hold: None,
            handed_out: false,
        }
    }

    /// Marks the connection ready for the caller; it now holds `hold` against the tenant's cap.
    pub(crate) fn hand_out(&mut self, hold: Option<TenantHold>) {
        self.hold = hold;
        self.handed_out = true;
    }

    /// Whether the connection's pool was closed since it was checked out.
    pub(crate) fn pool_closed(&self) -> bool {
        self.lent().active.entry.state.is_closed()
    }

    /// Clears and returns the tenant whose scope the connection carries.
    pub(crate) fn take_scoped(&mut self) -> Option<TenantId> {
        self.lent_mut().conn.scoped.take()
    }

    /// Records that the connection now carries `tenant`'s scope.
    pub(crate) fn set_scoped(&mut self, tenant: TenantId) {
        self.lent_mut().conn.scoped = Some(tenant);
    }

    /// The connection and the connector's state of it, for the scope calls.
    pub(crate) fn scope_parts(&mut self) -> (&mut ConnectionOf<C>, &mut C::Session) {
        let pooled = &mut *self.lent_mut().conn;
        (&mut pooled.conn, &mut pooled.session)
    }

    /// The pool's manager and the connection, for the checkout test.
    pub(crate) fn test_parts(&mut self) -> (&C::Manager, &mut ConnectionOf<C>) {
        let lent = self.lent_mut();
        (&lent.active.entry.manager, &mut lent.conn.conn)
    }

    fn lent(&self) -> &Lent<C> {
        match &self.lent {
            Some(lent) => lent,
            None => unreachable!("a checkout holds its connection until it is dropped"),
        }
    }

    fn lent_mut(&mut self) -> &mut Lent<C> {
        match &mut self.lent {
            Some(lent) => lent,
            None => unreachable!("a checkout holds its connection until it is dropped"),
        }
    }
}

impl<C: TenantConnector> Deref for Checkout<C> {
    type Target = ConnectionOf<C>;
    fn deref(&self) -> &Self::Target {
        &self.lent().conn.conn
    }
}

impl<C: TenantConnector> DerefMut for Checkout<C> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.lent_mut().conn.conn
    }
}

impl<C: TenantConnector> Drop for Checkout<C> {
    fn drop(&mut self) {
        let Some(Lent { mut conn, active }) = self.lent.take() else {
            return;
        };
        let returning = Returning {
            inner: Arc::clone(&self.inner),
            active,
            hold: self.hold.take(),
        };
        let state = &returning.active.entry.state;
        if !self.handed_out || state.is_closed() {
            conn.broken = true;
            returning.finish(conn);
            return;
        }
        if !state.key.is_shared() {
            returning.finish(conn);
            return;
        }
        let inner = &returning.inner;
        if inner.affinity_ms().is_some() && conn.scoped.is_some() {
            let pooled = &mut *conn;
            if inner
                .connector
                .keep_scope(&mut pooled.conn, &mut pooled.session)
            {
                pooled.kept_at_ms = inner.clock.now_ms();
                returning.finish(conn);
                return;
            }
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    affinity::reset(&returning.inner, &mut conn).await;
                    returning.finish(conn);
                });
            }
            // No runtime to reset on: never reuse a connection with a scope on it.
            Err(_) => {
                conn.broken = true;
                returning.finish(conn);
            }
        }
    }
}

/// The end of a checkout, possibly after an asynchronous reset.
struct Returning<C: TenantConnector> {
    inner: Arc<Inner<C>>,
    active: ActiveEntry<C>,
    hold: Option<TenantHold>,
}

impl<C: TenantConnector> Returning<C> {
    fn finish(self, mut conn: PoolConn<C>) {
        let state = &self.active.entry.state;
        let budget = &self.inner.budget;
        let slot_wanted =
            || (self.active.entry.slot.as_ref()).is_some_and(super::budget::SlotLease::wanted);
        if !conn.broken && (state.is_closed() || budget.wanted_elsewhere(state) || slot_wanted()) {
            // Another pool's connect waits for the budget (or for this tenant's cap): close
            // this one so its permit moves on, instead of keeping it idle here.
            conn.broken = true;
            if !state.is_closed() {
                self.inner.counters.evicted(1);
            }
        }
        let reused = !conn.broken;
        // Back to bb8: into the idle queue, or closed (which releases its permits).
        drop(conn);
        state.checked_in();
        self.inner.counters.checked_in();
        state.touch(self.inner.clock.now_ms());
        drop(self.hold);
        if reused {
            budget.went_idle();
        }
    }
}
