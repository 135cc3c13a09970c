//! An in-memory connector with no database (feature `testing`): drives the engine's
//! invariants, failure paths and overhead benchmarks fast.
//!
//! Its [`FakeProbe`] counts what a server would see: connections alive (overall, per pool,
//! peaks), scopes set per tenant, and connections handed out with a stale scope. Failures are
//! injected by count (`fail_next_connects`, `fail_next_resets`, ...), and
//! [`FakeProbe::kill_all`] breaks every open connection as a server restart would.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bb8::ManageConnection;
use dashmap::DashMap;
use time::OffsetDateTime;

use super::{PoolKey, TenantConnector};
use crate::domain::{Isolation, NewTenant, Tenant, TenantId, TenantSlug, TenantStatus};
use crate::error::{Error, Result};

/// An `Active` tenant with the conventional placement, for tests.
///
/// # Errors
/// [`Error::InvalidInput`] when `slug` is not a valid slug.
pub fn active_tenant(slug: &str, isolation: Isolation) -> Result<Tenant> {
    let mut tenant = NewTenant::new(TenantSlug::new(slug)?, slug, isolation)?
        .into_tenant(OffsetDateTime::now_utc());
    tenant.status = TenantStatus::Active;
    Ok(tenant)
}

/// A current and a peak count.
#[derive(Debug, Default)]
struct Gauge {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl Gauge {
    fn up(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
    }

    fn down(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }

    fn now(&self) -> usize {
        self.now.load(Ordering::SeqCst)
    }

    fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    fn reset_peak(&self) {
        self.peak.store(self.now(), Ordering::SeqCst);
    }
}

#[derive(Debug, Default)]
struct ProbeInner {
    alive: Gauge,
    per_pool: DashMap<Arc<str>, Arc<Gauge>>,
    scoped: DashMap<TenantId, Arc<Gauge>>,
    opened: AtomicU64,
    resets: AtomicU64,
    switches: AtomicU64,
    stale_scopes: AtomicU64,
    next_id: AtomicU64,
    generation: AtomicU64,
    fail_connects: AtomicU32,
    fail_applies: AtomicU32,
    fail_resets: AtomicU32,
}

/// What the fake "server" sees. Clones share the counts.
#[derive(Debug, Clone, Default)]
pub struct FakeProbe(Arc<ProbeInner>);

impl FakeProbe {
    /// Connections alive now.
    pub fn alive(&self) -> usize {
        self.0.alive.now()
    }

    /// Most connections alive at once since the last [`reset_peaks`](Self::reset_peaks).
    pub fn peak_alive(&self) -> usize {
        self.0.alive.peak()
    }

    /// Connections alive now in the pool named `pool` (a tenant id, or `server/database`).
    pub fn alive_in(&self, pool: &str) -> usize {
        self.0.per_pool.get(pool).map_or(0, |g| g.now())
    }

    /// Most connections alive at once in the pool named `pool`.
    pub fn peak_alive_in(&self, pool: &str) -> usize {
        self.0.per_pool.get(pool).map_or(0, |g| g.peak())
    }

    /// The highest per-pool peak of all pools.
    pub fn max_peak_per_pool(&self) -> usize {
        self.0.per_pool.iter().map(|g| g.peak()).max().unwrap_or(0)
    }

    /// Connections carrying `tenant`'s scope now.
    pub fn scoped(&self, tenant: TenantId) -> usize {
        self.0.scoped.get(&tenant).map_or(0, |g| g.now())
    }

    /// The highest number of connections any one tenant's scope was on at once.
    pub fn max_peak_scoped(&self) -> usize {
        self.0.scoped.iter().map(|g| g.peak()).max().unwrap_or(0)
    }

    /// Connections opened so far.
    pub fn opened(&self) -> u64 {
        self.0.opened.load(Ordering::SeqCst)
    }

    /// Successful scope resets so far.
    pub fn resets(&self) -> u64 {
        self.0.resets.load(Ordering::SeqCst)
    }

    /// Scope changes on a connection that still carried a scope the engine did not declare
    /// (`carried`): must stay 0.
    pub fn stale_scopes(&self) -> u64 {
        self.0.stale_scopes.load(Ordering::SeqCst)
    }

    /// Scope changes that cleared another scope first (affinity's switches) so far.
    pub fn switches(&self) -> u64 {
        self.0.switches.load(Ordering::SeqCst)
    }

    /// Breaks every open connection, as a server restart would: pings, scope changes and
    /// resets on them fail from now on.
    pub fn kill_all(&self) {
        self.0.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Makes the next `n` connects fail with `Unavailable`.
    pub fn fail_next_connects(&self, n: u32) {
        self.0.fail_connects.store(n, Ordering::SeqCst);
    }

    /// Makes the next `n` scope applications fail with `Unavailable`.
    pub fn fail_next_applies(&self, n: u32) {
        self.0.fail_applies.store(n, Ordering::SeqCst);
    }

    /// Makes the next `n` scope resets fail.
    pub fn fail_next_resets(&self, n: u32) {
        self.0.fail_resets.store(n, Ordering::SeqCst);
    }

    /// Starts peaks afresh from the current counts.
    pub fn reset_peaks(&self) {
        self.0.alive.reset_peak();
        for gauge in &self.0.per_pool {
            gauge.reset_peak();
        }
        for gauge in &self.0.scoped {
            gauge.reset_peak();
        }
    }

    fn take(counter: &AtomicU32) -> bool {
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    fn generation(&self) -> u64 {
        self.0.generation.load(Ordering::SeqCst)
    }

    fn pool_gauge(&self, pool: &Arc<str>) -> Arc<Gauge> {
        Arc::clone(&self.0.per_pool.entry(Arc::clone(pool)).or_default())
    }

    fn scope_gauge(&self, tenant: TenantId) -> Arc<Gauge> {
        Arc::clone(&self.0.scoped.entry(tenant).or_default())
    }
}

/// A fake connection: an id, the pool it belongs to, and the scope set on it.
#[derive(Debug)]
pub struct FakeConnection {
    id: u64,
    pool: Arc<str>,
    generation: u64,
    scope: Option<(TenantId, Arc<Gauge>)>,
    pool_gauge: Arc<Gauge>,
    probe: FakeProbe,
}

impl FakeConnection {
    /// A unique id, like a backend pid.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The pool it was opened for (tenant id, or `server/database`).
    pub fn pool(&self) -> &str {
        &self.pool
    }

    /// The tenant whose scope is set, like `current_setting('app.tenant_id')`.
    pub fn scope(&self) -> Option<TenantId> {
        self.scope.as_ref().map(|(tenant, _)| *tenant)
    }

    /// A query: fails on a connection broken by [`FakeProbe::kill_all`].
    ///
    /// # Errors
    /// `Unavailable` on a broken connection.
    pub fn query(&self) -> Result<Option<TenantId>> {
        self.check()?;
        Ok(self.scope())
    }

    fn check(&self) -> Result<()> {
        if self.generation == self.probe.generation() {
            Ok(())
        } else {
            Err(Error::unavailable("fake", "connection terminated"))
        }
    }

    fn clear_scope(&mut self) {
        if let Some((_, gauge)) = self.scope.take() {
            gauge.down();
        }
    }
}

impl Drop for FakeConnection {
    fn drop(&mut self) {
        self.clear_scope();
        self.pool_gauge.down();
        self.probe.0.alive.down();
    }
}

/// The `bb8` manager of one fake pool.
#[derive(Debug)]
pub struct FakeManager {
    pool: Arc<str>,
    latency: Duration,
    probe: FakeProbe,
}

impl FakeManager {
    /// A manager whose connections belong to `pool`.
    pub fn new(pool: &str, latency: Duration, probe: FakeProbe) -> Self {
        Self {
            pool: Arc::from(pool),
            latency,
            probe,
        }
    }
}

impl ManageConnection for FakeManager {
    type Connection = FakeConnection;
    type Error = Error;

    async fn connect(&self) -> Result<FakeConnection> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        if FakeProbe::take(&self.probe.0.fail_connects) {
            return Err(Error::unavailable("fake", "connection refused"));
        }
        let pool_gauge = self.probe.pool_gauge(&self.pool);
        pool_gauge.up();
        self.probe.0.alive.up();
        self.probe.0.opened.fetch_add(1, Ordering::SeqCst);
        Ok(FakeConnection {
            id: self.probe.0.next_id.fetch_add(1, Ordering::SeqCst),
            pool: Arc::clone(&self.pool),
            generation: self.probe.generation(),
            scope: None,
            pool_gauge,
            probe: self.probe.clone(),
        })
    }

    async fn is_valid(&self, conn: &mut FakeConnection) -> Result<()> {
        conn.check()
    }

    fn has_broken(&self, _conn: &mut FakeConnection) -> bool {
        false
    }
}

/// Routes tenants like the Postgres connector: database isolation to a pool of its own,
/// schema and shared isolation to a pool per `server/database`.
#[derive(Debug, Clone, Default)]
pub struct FakeConnector {
    probe: FakeProbe,
    latency: Duration,
    scope_latency: Duration,
    close_latency: Duration,
    keep_scope: bool,
}

impl FakeConnector {
    /// A connector whose connects complete at once.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every connect take `latency`.
    #[must_use]
    pub fn with_connect_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Makes every scope change take `latency` after the scope is set (a round trip whose
    /// answer is still on its way), so a checkout can be cancelled in the middle.
    #[must_use]
    pub fn with_scope_latency(mut self, latency: Duration) -> Self {
        self.scope_latency = latency;
        self
    }

    /// Makes every close take `latency` during which the connection still counts as alive
    /// (a backend still exiting); by default a close completes at once.
    #[must_use]
    pub fn with_close_latency(mut self, latency: Duration) -> Self {
        self.close_latency = latency;
        self
    }

    /// Lets returned connections keep their tenant's scope (tenant affinity), as a
    /// connector that can tell a clean session without I/O does.
    #[must_use]
    pub fn with_keep_scope(mut self, keep: bool) -> Self {
        self.keep_scope = keep;
        self
    }

    /// The probe.
    pub fn probe(&self) -> &FakeProbe {
        &self.probe
    }

    /// The probe's name of the pool serving `tenant`.
    pub fn pool_name(tenant: &Tenant) -> String {
        match tenant.isolation {
            Isolation::Database => tenant.id.to_string(),
            Isolation::Schema | Isolation::Shared => {
                format!("{}/{}", tenant.placement.server, tenant.placement.database)
            }
        }
    }
}

impl TenantConnector for FakeConnector {
    type Manager = FakeManager;
    type Session = ();

    fn pool_key(&self, tenant: &Tenant) -> Result<PoolKey> {
        Ok(match tenant.isolation {
            Isolation::Database => PoolKey::Tenant(tenant.id),
            Isolation::Schema | Isolation::Shared => {
                PoolKey::Shared(Arc::from(Self::pool_name(tenant)))
            }
        })
    }

    async fn manager(&self, tenant: &Tenant, _key: &PoolKey) -> Result<FakeManager> {
        Ok(FakeManager::new(
            &Self::pool_name(tenant),
            self.latency,
            self.probe.clone(),
        ))
    }

    async fn apply_scope(
        &self,
        conn: &mut FakeConnection,
        _session: &mut (),
        tenant: &Tenant,
        carried: Option<TenantId>,
    ) -> Result<()> {
        conn.check()?;
        if FakeProbe::take(&self.probe.0.fail_applies) {
            return Err(Error::unavailable("fake", "scope could not be set"));
        }
        if conn.scope() != carried {
            self.probe.0.stale_scopes.fetch_add(1, Ordering::SeqCst);
        }
        if carried.is_some() {
            self.probe.0.switches.fetch_add(1, Ordering::SeqCst);
        }
        conn.clear_scope();
        let gauge = self.probe.scope_gauge(tenant.id);
        gauge.up();
        conn.scope = Some((tenant.id, gauge));
        if !self.scope_latency.is_zero() {
            tokio::time::sleep(self.scope_latency).await;
        }
        Ok(())
    }

    fn keep_scope(&self, conn: &mut FakeConnection, _session: &mut ()) -> bool {
        self.keep_scope && conn.check().is_ok()
    }

    async fn close(&self, conn: FakeConnection) {
        if !self.close_latency.is_zero() {
            tokio::time::sleep(self.close_latency).await;
        }
        drop(conn);
    }

    async fn reset_scope(&self, conn: &mut FakeConnection, _session: &mut ()) -> Result<()> {
        conn.check()?;
        if FakeProbe::take(&self.probe.0.fail_resets) {
            return Err(Error::unavailable("fake", "scope could not be reset"));
        }
        conn.clear_scope();
        self.probe.0.resets.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}
