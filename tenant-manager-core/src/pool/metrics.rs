//! The engine's counters and their `metrics` series (listed in the module docs).

use std::sync::atomic::{AtomicU64, Ordering};

use metrics::{Counter, Gauge, Unit};

/// Totals of the engine, mirrored to `metrics`.
#[derive(Debug)]
pub(crate) struct Counters {
    open: AtomicU64,
    in_use: AtomicU64,
    opened: AtomicU64,
    pools: AtomicU64,
    evictions: AtomicU64,
    idle_closed: AtomicU64,
    waits: AtomicU64,
    timeouts: AtomicU64,
    scope: [AtomicU64; 3],
    series: Series,
}

#[derive(Debug)]
struct Series {
    idle: Gauge,
    in_use: Gauge,
    opened: Counter,
    pools: Gauge,
    evictions: Counter,
    idle_closed: Counter,
    waits: Counter,
    timeouts: Counter,
    scope: [Counter; 3],
}

/// How a checkout of a shared pool got its tenant's scope.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ScopeOutcome {
    /// The connection still carried the tenant's scope: nothing sent.
    Reused = 0,
    /// It carried another scope: reset and scoped in one step.
    Switched = 1,
    /// It was clean: scoped.
    Set = 2,
}

/// A snapshot of [`Counters`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Totals {
    pub(crate) open: u64,
    pub(crate) in_use: u64,
    pub(crate) opened: u64,
    pub(crate) pools: u64,
    pub(crate) evictions: u64,
    pub(crate) idle_closed: u64,
    pub(crate) waits: u64,
    pub(crate) timeouts: u64,
    /// Checkouts by [`ScopeOutcome`], in its order.
    pub(crate) scope: [u64; 3],
}

impl Counters {
    /// Registers the series with the current recorder.
    pub(crate) fn new() -> Self {
        metrics::describe_gauge!(
            "database_connections",
            Unit::Count,
            "Open database connections of the tenant pools, by state (idle, in_use)."
        );
        metrics::describe_counter!(
            "database_connections_total",
            Unit::Count,
            "Database connections opened by the tenant pools."
        );
        metrics::describe_gauge!("tenant_pools_open", Unit::Count, "Tenant pools open.");
        metrics::describe_counter!(
            "tenant_pool_evictions_total",
            Unit::Count,
            "Idle connections closed to make room in the global connection budget."
        );
        metrics::describe_counter!(
            "tenant_pool_idle_closed_total",
            Unit::Count,
            "Pools closed after sitting idle for the idle timeout."
        );
        metrics::describe_counter!(
            "tenant_pool_waits_total",
            Unit::Count,
            "Connects that waited for the global connection budget."
        );
        metrics::describe_counter!(
            "tenant_pool_timeouts_total",
            Unit::Count,
            "Acquires that gave up with pool_exhausted."
        );
        metrics::describe_counter!(
            "tenant_pool_scope_checkouts_total",
            Unit::Count,
            "Checkouts of shared pools by how the tenant's scope was had (reused, switched, set)."
        );
        let scope = |outcome: &'static str| metrics::counter!("tenant_pool_scope_checkouts_total", "scope" => outcome);
        Self {
            open: AtomicU64::new(0),
            in_use: AtomicU64::new(0),
            opened: AtomicU64::new(0),
            pools: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            idle_closed: AtomicU64::new(0),
            waits: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            scope: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
            series: Series {
                idle: metrics::gauge!("database_connections", "state" => "idle"),
                in_use: metrics::gauge!("database_connections", "state" => "in_use"),
                opened: metrics::counter!("database_connections_total"),
                pools: metrics::gauge!("tenant_pools_open"),
                evictions: metrics::counter!("tenant_pool_evictions_total"),
                idle_closed: metrics::counter!("tenant_pool_idle_closed_total"),
                waits: metrics::counter!("tenant_pool_waits_total"),
                timeouts: metrics::counter!("tenant_pool_timeouts_total"),
                scope: [scope("reused"), scope("switched"), scope("set")],
            },
        }
    }

    pub(crate) fn connection_opened(&self) {
        self.open.fetch_add(1, Ordering::SeqCst);
        self.opened.fetch_add(1, Ordering::Relaxed);
        self.series.opened.increment(1);
        self.publish_connections();
    }

    pub(crate) fn connection_closed(&self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
        self.publish_connections();
    }

    pub(crate) fn checked_out(&self) {
        self.in_use.fetch_add(1, Ordering::SeqCst);
        self.publish_connections();
    }

    pub(crate) fn checked_in(&self) {
        self.in_use.fetch_sub(1, Ordering::SeqCst);
        self.publish_connections();
    }

    pub(crate) fn pool_opened(&self) {
        let pools = self.pools.fetch_add(1, Ordering::Relaxed) + 1;
        self.series.pools.set(pools as f64);
    }

    pub(crate) fn pool_removed(&self) {
        let pools = self.pools.fetch_sub(1, Ordering::Relaxed).saturating_sub(1);
        self.series.pools.set(pools as f64);
    }

    pub(crate) fn evicted(&self, connections: u64) {
        self.evictions.fetch_add(connections, Ordering::Relaxed);
        self.series.evictions.increment(connections);
    }

    pub(crate) fn idle_pool_closed(&self) {
        self.idle_closed.fetch_add(1, Ordering::Relaxed);
        self.series.idle_closed.increment(1);
    }

    pub(crate) fn waited(&self) {
        self.waits.fetch_add(1, Ordering::Relaxed);
        self.series.waits.increment(1);
    }

    pub(crate) fn timed_out(&self) {
        self.timeouts.fetch_add(1, Ordering::Relaxed);
        self.series.timeouts.increment(1);
    }

    pub(crate) fn scoped(&self, outcome: ScopeOutcome) {
        let at = outcome as usize;
        self.scope[at].fetch_add(1, Ordering::Relaxed);
        self.series.scope[at].increment(1);
    }

    pub(crate) fn totals(&self) -> Totals {
        Totals {
            open: self.open.load(Ordering::SeqCst),
            in_use: self.in_use.load(Ordering::SeqCst),
            opened: self.opened.load(Ordering::Relaxed),
            pools: self.pools.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            idle_closed: self.idle_closed.load(Ordering::Relaxed),
            waits: self.waits.load(Ordering::Relaxed),
            timeouts: self.timeouts.load(Ordering::Relaxed),
            scope: [0, 1, 2].map(|at| self.scope[at].load(Ordering::Relaxed)),
        }
    }

    fn publish_connections(&self) {
        let open = self.open.load(Ordering::SeqCst);
        let in_use = self.in_use.load(Ordering::SeqCst);
        self.series.idle.set(open.saturating_sub(in_use) as f64);
        self.series.in_use.set(in_use as f64);
    }
}
