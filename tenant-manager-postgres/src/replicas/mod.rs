//! Read replicas: which streaming replica (if any) serves a tenant's read-only checkouts.
//!
//! Each server of the [`ServerMap`] may list hot standbys
//! ([`ServerMap::with_replica`]). With
//! [`PgTenantConnector::with_replica_policy`](crate::PgTenantConnector::with_replica_policy)
//! and [`PgTenantConnector::into_pools`](crate::PgTenantConnector::into_pools), a lag monitor
//! measures every replica each [`ReplicaPolicy::interval`]: its replay lag in
//! bytes (the primary's `pg_current_wal_lsn()` minus the replica's `pg_last_wal_replay_lsn()`,
//! so an idle primary never makes a replica look behind) and, when the bytes are not all
//! replayed, in time (now minus `pg_last_xact_replay_timestamp()`). A replica within the bounds
//! serves reads; one behind them, unreachable, promoted (no longer in recovery), or whose
//! primary cannot be measured, does not, and reads go to the primary with the session
//! read-only (`default_transaction_read_only`).
//!
//! # Metrics
//!
//! | series | kind | meaning |
//! |---|---|---|
//! | `tenant_pool_read_routes_total{route="replica"\|"primary"}` | counter | read-only checkouts routed to a replica, or to the primary (no replica within the bounds, or the pool's wall needs the primary) |
//! | `tenant_pool_replica_lag_bytes{server, replica}` | gauge | the replica's replay lag at the last measure (bytes of WAL) |
//! | `tenant_pool_replica_available{server, replica}` | gauge | 1 when the replica serves reads, 0 when not |
//!
//! Labels name servers and replicas of the configuration, never tenants.

pub(crate) mod monitor;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use metrics::{Counter, Gauge, Unit};
use tenant_manager_core::{Error, Result, ServerId};

use crate::servers::ServerMap;

/// The route name of the primary's read-only pools.
pub(crate) const PRIMARY_ROUTE: &str = "primary";

/// How far behind a replica may be and still serve reads, and how often that is measured.
///
/// ```
/// use std::time::Duration;
/// use tenant_manager_postgres::replicas::ReplicaPolicy;
///
/// let policy = ReplicaPolicy::default()
///     .with_max_lag_bytes(16 * 1024 * 1024)
///     .with_max_lag(Some(Duration::from_secs(5)));
/// assert!(policy.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplicaPolicy {
    /// Most bytes of WAL a replica may have left to replay (`REPLICA_MAX_LAG_BYTES`).
    pub max_lag_bytes: u64,
    /// Longest a replica may lag in time while it has WAL left to replay
    /// (`REPLICA_MAX_LAG_MS`); `None`: bytes only.
    pub max_lag: Option<Duration>,
    /// How often the monitor measures (`REPLICA_CHECK_INTERVAL_MS`).
    pub interval: Duration,
    /// How long one measure may take before the replica counts as unreachable.
    pub probe_timeout: Duration,
}

impl Default for ReplicaPolicy {
    /// 1 MiB, no time bound, every second, 2 s probe timeout.
    fn default() -> Self {
        Self {
            max_lag_bytes: 1024 * 1024,
            max_lag: None,
            interval: Duration::from_secs(1),
            probe_timeout: Duration::from_secs(2),
        }
    }
}

impl ReplicaPolicy {
    /// Sets the byte bound.
    #[must_use]
    pub fn with_max_lag_bytes(mut self, bytes: u64) -> Self {
        self.max_lag_bytes = bytes;
        self
    }

    /// Sets the time bound.
    #[must_use]
    pub fn with_max_lag(mut self, max_lag: Option<Duration>) -> Self {
        self.max_lag = max_lag;
        self
    }

    /// Sets how often the monitor measures.
    #[must_use]
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Sets how long one measure may take.
    #[must_use]
    pub fn with_probe_timeout(mut self, timeout: Duration) -> Self {
        self.probe_timeout = timeout;
        self
    }

    /// Checks that the interval and the probe timeout are 1 ms to 1 hour.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the first field out of range.
    pub fn validate(&self) -> Result<()> {
        let range = Duration::from_millis(1)..=Duration::from_secs(3600);
        if !range.contains(&self.interval) {
            return Err(Error::invalid(
                "replica_check_interval",
                "must be 1 ms to 1 h",
            ));
        }
        if !range.contains(&self.probe_timeout) {
            return Err(Error::invalid(
                "replica_probe_timeout",
                "must be 1 ms to 1 h",
            ));
        }
        Ok(())
    }
}

/// What the monitor last saw of one replica.
#[derive(Debug)]
pub(crate) struct ReplicaState {
    /// Its name: `<server>.r<index>`, unique across servers. Its routes are
    /// `<name>.<epoch>`.
    pub(crate) route: Arc<str>,
    available: AtomicBool,
    /// Raised each time the replica goes out of service: its pools of before (whose
    /// connections may be dead, or kept with a scope and handed out with no statement) are
    /// never used again, reads come back to new pools.
    epoch: AtomicU64,
    lag_bytes: AtomicU64,
    lag_gauge: Gauge,
    available_gauge: Gauge,
}

impl ReplicaState {
    fn new(server: &ServerId, index: usize) -> Self {
        let route: Arc<str> = Arc::from(format!("{server}.r{index}"));
        let labels = [
            ("server", server.as_str().to_owned()),
            ("replica", format!("r{index}")),
        ];
        Self {
            available: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            lag_bytes: AtomicU64::new(0),
            lag_gauge: metrics::gauge!("tenant_pool_replica_lag_bytes", &labels),
            available_gauge: metrics::gauge!("tenant_pool_replica_available", &labels),
            route,
        }
    }

    /// Records a measure: the lag and whether it is within the bounds.
    pub(crate) fn measured(&self, lag_bytes: u64, within: bool) {
        self.lag_bytes.store(lag_bytes, Ordering::Relaxed);
        self.lag_gauge.set(lag_bytes as f64);
        self.set_available(within);
    }

    /// Marks the replica out of service until the next good measure.
    pub(crate) fn set_available(&self, available: bool) {
        if self.available.swap(available, Ordering::SeqCst) && !available {
            self.epoch.fetch_add(1, Ordering::SeqCst);
        }
        self.available_gauge.set(if available { 1.0 } else { 0.0 });
    }

    fn is_available(&self) -> bool {
        self.available.load(Ordering::SeqCst)
    }
}

/// The replicas of every server and what the monitor last saw of them, shared by the
/// connector (which routes by it) and the monitor (which writes it).
#[derive(Debug)]
pub(crate) struct ReplicaRoutes {
    pub(crate) policy: ReplicaPolicy,
    servers: BTreeMap<ServerId, Vec<ReplicaState>>,
    /// Spreads reads over the available replicas of a server.
    next: AtomicUsize,
    to_replica: Counter,
    to_primary: Counter,
}

impl ReplicaRoutes {
    /// The replicas of `servers`, all out of service until first measured.
    pub(crate) fn new(servers: &ServerMap, policy: ReplicaPolicy) -> Result<Self> {
        policy.validate()?;
        metrics::describe_counter!(
            "tenant_pool_read_routes_total",
            Unit::Count,
            "Read-only checkouts by route (replica, primary)."
        );
        metrics::describe_gauge!(
            "tenant_pool_replica_lag_bytes",
            Unit::Bytes,
            "Replay lag of each read replica at its last measure."
        );
        metrics::describe_gauge!(
            "tenant_pool_replica_available",
            Unit::Count,
            "1 when a read replica serves reads (reachable, within the lag bounds)."
        );
        let mut map = BTreeMap::new();
        for id in servers.ids() {
            let count = servers.get(id)?.replicas.len();
            map.insert(
                id.clone(),
                (0..count).map(|i| ReplicaState::new(id, i)).collect(),
            );
        }
        Ok(Self {
            policy,
            servers: map,
            next: AtomicUsize::new(0),
            to_replica: metrics::counter!("tenant_pool_read_routes_total", "route" => "replica"),
            to_primary: metrics::counter!("tenant_pool_read_routes_total", "route" => "primary"),
        })
    }

    /// The replicas of `server`.
    pub(crate) fn of(&self, server: &ServerId) -> &[ReplicaState] {
        self.servers.get(server).map_or(&[], Vec::as_slice)
    }

    /// The route of a read on `server`: an available replica (round robin), else the primary.
    /// Counted.
    pub(crate) fn pick(&self, server: &ServerId) -> Arc<str> {
        let replicas = self.of(server);
        if !replicas.is_empty() {
            let start = self.next.fetch_add(1, Ordering::Relaxed);
            for offset in 0..replicas.len() {
                let replica = &replicas[(start + offset) % replicas.len()];
                if replica.is_available() {
                    self.to_replica.increment(1);
                    let epoch = replica.epoch.load(Ordering::SeqCst);
                    return Arc::from(format!("{}.{epoch}", replica.route));
                }
            }
        }
        self.to_primary()
    }

    /// The primary's read-only route; counted.
    pub(crate) fn to_primary(&self) -> Arc<str> {
        self.to_primary.increment(1);
        Arc::from(PRIMARY_ROUTE)
    }

    /// The replica of `server` that `route` (`<name>.<epoch>`) leads to, if it is a replica.
    pub(crate) fn replica(&self, server: &ServerId, route: &str) -> Option<(usize, &ReplicaState)> {
        let (name, _epoch) = route.rsplit_once('.')?;
        self.of(server)
            .iter()
            .enumerate()
            .find(|(_, replica)| &*replica.route == name)
    }

    /// The last measured lag of each replica of `server`, and whether it serves reads.
    pub(crate) fn status(&self, server: &ServerId) -> Vec<(u64, bool)> {
        self.of(server)
            .iter()
            .map(|r| (r.lag_bytes.load(Ordering::Relaxed), r.is_available()))
            .collect()
    }
}
