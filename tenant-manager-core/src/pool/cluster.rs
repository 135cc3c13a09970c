//! The cluster budget: each database server's connection budget shared by every instance
//! through [`ConnectionLeases`], so the connections of all instances to a server never exceed
//! what the operator set for it.
//!
//! An instance holds a count of lease slots per budgeted server and opens a connection only
//! with a slot of its own; a connection's slot comes back once it is closed (for Postgres:
//! `Terminate` sent and the backend's exit seen, so the old session never shows in
//! `pg_stat_activity` next to the one that takes its slot; at most
//! [`CLOSE_TIMEOUT`](super::CLOSE_TIMEOUT) after the close began), and the heartbeat
//! hands surplus slots back to the backend at once and renews the rest every third of the
//! lease time. When the backend cannot be reached, the instance keeps its slots until its last
//! successful renewal's lease time has passed (measured from before that call was sent), and
//! then falls back to a local share of **zero**: it opens no connection to the server and
//! closes its idle ones, and connections checked out then are closed when returned. The others
//! may take its share once its lease expired in the backend, never earlier.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use metrics::{Counter, Gauge, Unit};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::domain::ServerId;
use crate::error::{Error, Result};
use crate::traits::{ConnectionLeases, LeaseGrant, validate_lease};

/// How long a connect refused a slot waits before asking the backend again (unless a slot of
/// its server comes back in this instance first).
const RETRY: Duration = Duration::from_millis(50);

/// One connection budget per database server, for all instances together; see
/// [`TenantPools::new_clustered`](super::TenantPools::new_clustered).
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use tenant_manager_core::ServerId;
/// use tenant_manager_core::memory::InMemoryConnectionLeases;
/// use tenant_manager_core::pool::ClusterBudget;
///
/// let budget = ClusterBudget::new(Arc::new(InMemoryConnectionLeases::new()), "instance-1")
///     .with_server(ServerId::default_server(), 80)
///     .with_lease_ttl(Duration::from_secs(10));
/// assert!(budget.validate().is_ok());
/// ```
#[derive(Clone)]
pub struct ClusterBudget {
    leases: Arc<dyn ConnectionLeases>,
    holder: String,
    budgets: HashMap<ServerId, u32>,
    ttl: Duration,
}

impl fmt::Debug for ClusterBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterBudget")
            .field("leases", &self.leases)
            .field("holder", &self.holder)
            .field("budgets", &self.budgets)
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl ClusterBudget {
    /// Leases from `leases`, held under `holder` (unique per instance, for instance
    /// `<host>-<pid>`), with no server budgeted yet and a lease time of 10 s.
    pub fn new(leases: Arc<dyn ConnectionLeases>, holder: impl Into<String>) -> Self {
        Self {
            leases,
            holder: holder.into(),
            budgets: HashMap::new(),
            ttl: Duration::from_secs(10),
        }
    }

    /// Budgets `server`: at most `budget` connections of all instances together. Servers not
    /// budgeted are bounded by each instance's own `max_total` only.
    #[must_use]
    pub fn with_server(mut self, server: ServerId, budget: u32) -> Self {
        self.budgets.insert(server, budget);
        self
    }

    /// Sets the lease time: how long a dead instance's share stays reserved, and how long an
    /// instance that cannot reach the backend keeps its share.
    #[must_use]
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The budget of `server`, if it has one.
    pub fn budget(&self, server: &ServerId) -> Option<u32> {
        self.budgets.get(server).copied()
    }

    /// Checks the holder name and the lease time (at least 30 ms, so renewals every third of
    /// it stay meaningful).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `holder` or `ttl`.
    pub fn validate(&self) -> Result<()> {
        validate_lease(&self.holder, self.ttl)?;
        if self.ttl < Duration::from_millis(30) {
            return Err(Error::invalid("ttl", "must be at least 30 ms"));
        }
        Ok(())
    }
}

/// The instance's slots of one server.
#[derive(Debug, Clone, Copy)]
struct Counts {
    /// Slots the backend granted us, as of the last answer.
    held: u32,
    /// Slots our open connections hold.
    used: u32,
    /// Until when our slots are certainly still ours: the start of the last successful call
    /// plus the lease time. `None` before the first grant.
    valid_until: Option<Instant>,
}

impl Counts {
    /// Slots we may use now: none once our lease may have expired.
    fn usable(&self, now: Instant) -> u32 {
        match self.valid_until {
            Some(until) if now < until => self.held,
            _ => 0,
        }
    }
}

/// One budgeted server's share of this instance.
pub(crate) struct Share {
    server: ServerId,
    budget: u32,
    counts: Mutex<Counts>,
    /// Serializes this instance's backend calls on the server, so answers apply in order.
    calls: tokio::sync::Mutex<()>,
    /// A slot came back in this instance.
    freed: Notify,
    /// Another holder was refused a slot lately: idle connections should go.
    contended: std::sync::atomic::AtomicBool,
    held_gauge: Gauge,
    refused: Counter,
    unavailable: Counter,
}

impl fmt::Debug for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Share")
            .field("server", &self.server)
            .field("budget", &self.budget)
            .field("counts", &self.counts())
            .finish()
    }
}

impl Share {
    fn counts(&self) -> Counts {
        *self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update<T>(&self, f: impl FnOnce(&mut Counts) -> T) -> T {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let out = f(&mut counts);
        let usable = counts.usable(Instant::now());
        drop(counts);
        self.held_gauge.set(f64::from(usable));
        out
    }

    fn try_take(&self) -> bool {
        let now = Instant::now();
        self.update(|c| {
            let ok = c.used < c.usable(now);
            if ok {
                c.used += 1;
            }
            ok
        })
    }

    /// Whether our connections to the server hold more slots than we may use.
    pub(crate) fn over(&self) -> bool {
        let counts = self.counts();
        counts.used > counts.usable(Instant::now())
    }

    /// Records an answer of the backend to a call started at `started`.
    fn granted(&self, grant: LeaseGrant, started: Instant, ttl: Duration) {
        self.contended
            .store(grant.contended, std::sync::atomic::Ordering::SeqCst);
        self.update(|c| {
            c.held = grant.held;
            c.valid_until = Some(started + ttl);
        });
    }

    /// Whether the last answer said the server is contended.
    fn is_contended(&self) -> bool {
        self.contended.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A slot of a server's cluster budget, held by one open connection; given back to the
/// instance's share when dropped, which the engine does only once the connection is closed
/// (its backend gone, see `managed`), so that no other connection, of this instance or
/// another, opens while the old session may still count on the server.
pub(crate) struct ClusterSlot {
    share: Arc<Share>,
    wake: Weak<Notify>,
}

impl fmt::Debug for ClusterSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterSlot")
            .field("server", &self.share.server)
            .finish()
    }
}

impl ClusterSlot {
    /// Whether the instance holds more slots of this server than it may (lease lost or
    /// shrunk): the connection is then closed rather than reused.
    pub(crate) fn over(&self) -> bool {
        self.share.over()
    }
}

impl Drop for ClusterSlot {
    fn drop(&mut self) {
        self.share.update(|c| c.used = c.used.saturating_sub(1));
        self.share.freed.notify_waiters();
        if let Some(wake) = self.wake.upgrade() {
            wake.notify_one();
        }
    }
}

/// The engine's side of a [`ClusterBudget`].
pub(crate) struct Cluster {
    leases: Arc<dyn ConnectionLeases>,
    holder: String,
    ttl: Duration,
    shares: HashMap<ServerId, Arc<Share>>,
    /// Wakes the heartbeat when a slot came back (to hand it back at once).
    wake: Arc<Notify>,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("holder", &self.holder)
            .field("shares", &self.shares)
            .finish()
    }
}

impl Cluster {
    /// Registers the series with the current recorder.
    pub(crate) fn new(budget: ClusterBudget) -> Self {
        metrics::describe_gauge!(
            "tenant_pool_cluster_leases",
            Unit::Count,
            "Slots of a server's cluster connection budget this instance holds, by server."
        );
        metrics::describe_counter!(
            "tenant_pool_cluster_lease_failures_total",
            Unit::Count,
            "Asks for a slot of a server's cluster budget that got none, by server and reason \
             (refused: budget spent; unavailable: lease backend unreachable)."
        );
        let shares = budget
            .budgets
            .into_iter()
            .map(|(server, limit)| {
                let label = server.to_string();
                let failures = |reason: &'static str| {
                    metrics::counter!("tenant_pool_cluster_lease_failures_total",
                        "server" => label.clone(), "reason" => reason)
                };
                let share = Share {
                    budget: limit,
                    counts: Mutex::new(Counts {
                        held: 0,
                        used: 0,
                        valid_until: None,
                    }),
                    calls: tokio::sync::Mutex::new(()),
                    freed: Notify::new(),
                    contended: std::sync::atomic::AtomicBool::new(false),
                    held_gauge: metrics::gauge!("tenant_pool_cluster_leases", "server" => label.clone()),
                    refused: failures("refused"),
                    unavailable: failures("unavailable"),
                    server: server.clone(),
                };
                (server, Arc::new(share))
            })
            .collect();
        Self {
            leases: budget.leases,
            holder: budget.holder,
            ttl: budget.ttl,
            shares,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Whether `server` has a cluster budget.
    pub(crate) fn budgets(&self, server: &ServerId) -> bool {
        self.shares.contains_key(server)
    }

    /// Slots of `server` this instance holds and may use now.
    pub(crate) fn usable(&self, server: &ServerId) -> u32 {
        self.shares
            .get(server)
            .map_or(0, |share| share.counts().usable(Instant::now()))
    }

    /// A slot of `server` for a new connection, by `deadline`: one of this instance's free
    /// slots, else a new one from the backend; while none is granted, `evict` closes an idle
    /// connection of this instance to the server (its slot then comes back here) and the
    /// connect waits. `Ok(None)` when the server has no cluster budget; `Err(())` at the
    /// deadline.
    pub(crate) async fn slot(
        &self,
        server: &ServerId,
        deadline: std::time::Instant,
        evict: &(dyn Fn() -> bool + Sync),
    ) -> std::result::Result<Option<ClusterSlot>, ()> {
        let Some(share) = self.shares.get(server) else {
            return Ok(None);
        };
        let deadline = Instant::from_std(deadline);
        let slot = || ClusterSlot {
            share: Arc::clone(share),
            wake: Arc::downgrade(&self.wake),
        };
        loop {
            let freed = share.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if share.try_take() {
                return Ok(Some(slot()));
            }
            if self.ask(share, deadline).await && share.try_take() {
                return Ok(Some(slot()));
            }
            evict();
            let retry = (Instant::now() + RETRY).min(deadline);
            tokio::select! {
                () = freed => {}
                () = tokio::time::sleep_until(retry) => {}
            }
            if Instant::now() >= deadline {
                return Err(());
            }
        }
    }

    /// Asks the backend for one more slot of `share`'s server; whether one was granted.
    async fn ask(&self, share: &Share, deadline: Instant) -> bool {
        let Ok(_calls) = tokio::time::timeout_at(deadline, share.calls.lock()).await else {
            return false;
        };
        let before = share.counts();
        if before.used < before.usable(Instant::now()) {
            // A slot came back while we queued for the call.
            return true;
        }
        let started = Instant::now();
        let call = self
            .leases
            .acquire(&share.server, &self.holder, 1, share.budget, self.ttl);
        match tokio::time::timeout_at(deadline, call).await {
            Ok(Ok(grant)) => {
                share.granted(grant, started, self.ttl);
                let granted = grant.held > before.used;
                if !granted {
                    share.refused.increment(1);
                }
                granted
            }
            Ok(Err(error)) => {
                share.unavailable.increment(1);
                tracing::warn!(server = %share.server, %error, "cluster connection budget: lease backend unavailable");
                false
            }
            Err(_) => {
                share.unavailable.increment(1);
                false
            }
        }
    }

    /// One heartbeat of every share: surplus slots handed back, the rest renewed. Returns the
    /// servers on which this instance now holds more connections than slots, or which are
    /// contended (another instance was refused a slot): their idle connections should close,
    /// so their slots go back to the backend.
    pub(crate) async fn beat(&self) -> Vec<ServerId> {
        let mut over = Vec::new();
        for share in self.shares.values() {
            let _calls = share.calls.lock().await;
            let started = Instant::now();
            // The surplus leaves this instance's share before it is handed back, in the same
            // step that counts it: a connect taking a free slot meanwhile (`try_take` does not
            // wait for the call) must not take one that another instance may already hold.
            let (counts, surplus) = share.update(|c| {
                let surplus = c.usable(started).saturating_sub(c.used);
                c.held -= surplus;
                (*c, surplus)
            });
            let result = async {
                if surplus > 0 {
                    self.leases
                        .release(&share.server, &self.holder, surplus)
                        .await?;
                }
                if counts.held == 0 && counts.used == 0 {
                    return Ok(LeaseGrant::new(0, false));
                }
                self.leases
                    .renew(&share.server, &self.holder, self.ttl)
                    .await
            };
            match tokio::time::timeout(self.ttl / 3, result).await {
                Ok(Ok(grant)) => share.granted(grant, started, self.ttl),
                Ok(Err(error)) => {
                    tracing::warn!(server = %share.server, %error, "cluster connection budget: renewal failed");
                    share.update(|_| ());
                }
                Err(_) => share.update(|_| ()),
            }
            if share.over() || (share.is_contended() && share.counts().used > 0) {
                over.push(share.server.clone());
            }
        }
        over
    }

    /// How often the heartbeat runs at the latest: a third of the lease time.
    pub(crate) fn interval(&self) -> Duration {
        self.ttl / 3
    }

    /// Woken when a slot comes back.
    pub(crate) fn woken(&self) -> tokio::sync::futures::Notified<'_> {
        self.wake.notified()
    }

    /// Hands the slots back at shutdown, once the connections closing then are closed (their
    /// slots come back), waiting at most `bound`: every slot when none is in use any more,
    /// else only the surplus, and the slots of connections still open expire with the lease.
    /// Errors are ignored, the leases expire anyway.
    pub(crate) async fn release_all(&self, bound: Duration) {
        let deadline = Instant::now() + bound;
        for share in self.shares.values() {
            loop {
                let freed = share.freed.notified();
                tokio::pin!(freed);
                freed.as_mut().enable();
                if share.counts().used == 0 {
                    break;
                }
                if tokio::time::timeout_at(deadline, freed).await.is_err() {
                    break;
                }
            }
            let counts = share.counts();
            let count = if counts.used == 0 {
                u32::MAX
            } else {
                counts.held.saturating_sub(counts.used)
            };
            if count > 0 {
                let _ = self
                    .leases
                    .release(&share.server, &self.holder, count)
                    .await;
            }
        }
    }
}
