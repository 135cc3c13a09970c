//! `TenantPools`: the public face of the engine.

use std::fmt;
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::ClusterBudget;
use super::cluster::Cluster;
use super::inner::Inner;
use super::{ConnectionOf, PoolConfig, PoolKey, TenantConnector};
use crate::domain::{ServerId, Tenant, TenantId};
use crate::error::{Error, Result};
use crate::traits::{PoolManager, PoolStats, TenantConnection, TenantPoolStats};

/// The pool engine: one `bb8` pool per tenant (database isolation) or per database shared
/// by tenants (schema and shared isolation), inside one global connection budget.
///
/// - **Caps by permits.** Every open connection holds a permit of the global budget
///   (`max_total`) for its whole life; a connection of a tenant pool also holds a permit of
///   its tenant's cap; a checkout from a shared pool holds a permit of its tenant's cap for as
///   long as it is checked out. A tenant at its cap waits on its own line, never on the
///   budget.
/// - **Making room.** When the budget is spent, a connect closes idle connections of the
///   least recently used other pool; if none is idle it waits in FIFO order, and a connection
///   returned while others wait is closed so its permit moves on. After the acquire timeout
///   the caller gets [`Error::PoolExhausted`] with the time it waited.
/// - **Scope and affinity.** A connection of a shared pool carries its tenant's scope before
///   it is handed out. A connection its tenant returns clean (the connector's
///   [`keep_scope`](TenantConnector::keep_scope): no transaction open, no reply pending)
///   keeps that scope; a checkout of the same tenant within
///   [`PoolConfig::scope_affinity`] prefers such a connection (among the first idle ones) and
///   sends nothing at all. Any other checkout of it resets the old scope and sets the new one
///   in one step, so state a tenant leaves is only ever seen by that tenant. A connection that
///   does not keep its scope is reset on return on a spawned task; one whose reset or scope
///   change fails, times out or cannot run (no runtime) is discarded, as is one whose acquire
///   was cancelled mid-checkout.
/// - **Lifecycle.** Pools are created on first use; a background reaper closes pools unused
///   for the idle timeout and stops when the engine is dropped; [`close_tenant`] closes a
///   tenant's pool at once (checked-out connections close when returned).
/// - **Hot path.** A checkout is one sharded-map lookup, atomics and bb8's own pool lock:
///   O(1) in the number of tenants, no global lock, nothing held across an `.await`.
///
/// Cloning is cheap: clones share the engine.
///
/// [`close_tenant`]: PoolManager::close_tenant
pub struct TenantPools<C: TenantConnector> {
    inner: Arc<Inner<C>>,
}

impl<C: TenantConnector> TenantPools<C> {
    /// An engine over `connector`, and its reaper task.
    ///
    /// Install the `metrics` recorder before calling this: the series are registered here.
    ///
    /// # Errors
    /// - [`Error::InvalidInput`] when `config` does not validate.
    /// - [`Error::Internal`] when called outside a tokio runtime (the reaper needs one).
    pub fn new(connector: C, config: PoolConfig) -> Result<Self> {
        Self::build(connector, config, None)
    }

    /// An engine over `connector` whose connections to each server `budget` names count
    /// against that server's budget for all instances together (the [`ClusterBudget`]'s
    /// leases); its reaper and its lease heartbeat.
    ///
    /// A connect to a budgeted server first takes a slot of this instance's share, asking the
    /// leases for one more when none is free; while none is granted it closes an idle
    /// connection of this instance to the server, and waits, up to the acquire timeout. A
    /// connection's slot comes back when it closes, and the heartbeat (every third of the
    /// lease time, and whenever a slot came back) hands surplus slots back and renews the rest.
    /// If the leases cannot be renewed for the lease time, the instance's share falls to zero
    /// (see [`ClusterBudget`]'s module: idle connections close, returned ones close, no new
    /// ones open) until they answer again.
    ///
    /// # Errors
    /// As [`new`](Self::new); [`Error::InvalidInput`] when `budget` does not validate.
    pub fn new_clustered(connector: C, config: PoolConfig, budget: ClusterBudget) -> Result<Self> {
        budget.validate()?;
        Self::build(connector, config, Some(Arc::new(Cluster::new(budget))))
    }

    fn build(connector: C, config: PoolConfig, cluster: Option<Arc<Cluster>>) -> Result<Self> {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| Error::internal_with("TenantPools needs a tokio runtime", e))?;
        let stop = CancellationToken::new();
        let inner = Arc::new(Inner::new(
            connector,
            config,
            cluster.clone(),
            stop.clone().drop_guard(),
        ));
        if let Some(cluster) = cluster {
            runtime.spawn(heartbeat(Arc::downgrade(&inner), cluster, stop.clone()));
        }
        runtime.spawn(reaper(Arc::downgrade(&inner), stop));
        Ok(Self { inner })
    }

    /// Slots of `server`'s cluster budget this instance holds and may use now; `None` when
    /// the engine has no cluster budget for it.
    pub fn cluster_share(&self, server: &ServerId) -> Option<u32> {
        let cluster = self.inner.cluster.as_ref()?;
        cluster.budgets(server).then(|| cluster.usable(server))
    }

    /// The configuration.
    pub fn config(&self) -> &PoolConfig {
        &self.inner.config
    }

    /// The connector.
    pub fn connector(&self) -> &C {
        &self.inner.connector
    }

    /// A connection scoped to `tenant`, without the boxing of the [`PoolManager`] future.
    ///
    /// # Errors
    /// As [`PoolManager::acquire`].
    pub async fn acquire(&self, tenant: &Tenant) -> Result<TenantConnection<ConnectionOf<C>>> {
        let checkout = self.inner.checkout(tenant).await?;
        Ok(TenantConnection::new(tenant.id, Box::new(checkout)))
    }

    /// A read-only connection scoped to `tenant`: the same scope as [`acquire`](Self::acquire)
    /// (role, `search_path`, tenant setting, the wall where the route runs it), counted
    /// against the same caps (the tenant's and the global budget), from the pool the
    /// connector's [`read_key`](TenantConnector::read_key) names (for Postgres: a streaming
    /// replica within the lag bound, else the primary with the session read-only). When that
    /// pool's backend cannot be reached and the connector routes elsewhere since, the checkout
    /// is retried there once (with a new acquire timeout).
    ///
    /// # Errors
    /// As [`PoolManager::acquire`]; `InvalidInput` on `read_route` when the connector has no
    /// read-only route.
    pub async fn acquire_read(&self, tenant: &Tenant) -> Result<TenantConnection<ConnectionOf<C>>> {
        let checkout = self.inner.checkout_read(tenant).await?;
        Ok(TenantConnection::new(tenant.id, Box::new(checkout)))
    }

    /// Closes the pool under `key` (for a shared pool: every tenant's connections there).
    /// Returns whether there was one.
    pub fn close_pool(&self, key: &PoolKey) -> bool {
        self.inner.close(key)
    }

    /// Closes every pool, for a graceful shutdown. Checked-out connections close when returned.
    pub fn close_all(&self) {
        self.inner.close_all();
    }

    /// Checkouts of `tenant` in shared pools plus connections of its own pool: what counts
    /// against its cap right now.
    pub fn tenant_in_use(&self, tenant: TenantId) -> u32 {
        self.inner.slots.in_use(tenant)
    }

    /// Runs one pass of the reaper now (it also runs every `reaper_interval`).
    pub fn reap_now(&self) {
        self.inner.reap();
    }

    /// Current counts, in total and per pool. A tenant of a pool of its own has a row of its
    /// own (`tenant` set); tenants of a shared pool are counted in that pool's row, and
    /// [`tenant_in_use`](Self::tenant_in_use) gives one such tenant's checkouts.
    pub fn stats(&self) -> PoolStats {
        let totals = self.inner.counters.totals();
        let per_pool: Vec<TenantPoolStats> = self
            .inner
            .pools
            .iter()
            .map(|item| {
                let state = &item.value().state;
                let open = state.open();
                let in_use = state.in_use();
                TenantPoolStats {
                    tenant: state.key.tenant(),
                    key: state.key.to_string(),
                    open,
                    idle: open.saturating_sub(in_use),
                    in_use,
                }
            })
            .collect();
        let to_u32 = |value: u64| u32::try_from(value).unwrap_or(u32::MAX);
        PoolStats {
            open: to_u32(totals.open),
            idle: to_u32(totals.open.saturating_sub(totals.in_use)),
            in_use: to_u32(totals.in_use),
            pools: to_u32(totals.pools),
            max_total: self.inner.config.max_total,
            max_per_tenant: self.inner.config.max_per_tenant,
            connections_opened: totals.opened,
            evictions: totals.evictions,
            idle_pools_closed: totals.idle_closed,
            waits: totals.waits,
            timeouts: totals.timeouts,
            scope_reused: totals.scope[0],
            scope_switched: totals.scope[1],
            scope_set: totals.scope[2],
            per_pool,
        }
    }
}

impl<C: TenantConnector> Clone for TenantPools<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<C: TenantConnector> fmt::Debug for TenantPools<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantPools")
            .field("connector", &self.inner.connector)
            .field("config", &self.inner.config)
            .field("pools", &self.inner.counters.totals().pools)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl<C: TenantConnector> PoolManager for TenantPools<C> {
    type Connection = ConnectionOf<C>;

    async fn acquire(&self, tenant: &Tenant) -> Result<TenantConnection<Self::Connection>> {
        TenantPools::acquire(self, tenant).await
    }

    /// Closes the tenant's own pool (database isolation). A tenant of a shared pool has no
    /// pool of its own: its checkouts end as they are returned (reset as always), and a tenant
    /// that is not `Active` gets no new connection.
    async fn close_tenant(&self, tenant: TenantId) -> Result<()> {
        self.inner.close(&PoolKey::Tenant(tenant));
        self.inner.close_routes(tenant);
        Ok(())
    }

    fn stats(&self) -> PoolStats {
        TenantPools::stats(self)
    }
}

/// Closes idle pools every `reaper_interval`; ends when the engine is dropped.
async fn reaper<C: TenantConnector>(engine: Weak<Inner<C>>, stop: CancellationToken) {
    let every = match engine.upgrade() {
        Some(inner) => inner.config.reaper_interval,
        None => return,
    };
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        match engine.upgrade() {
            Some(inner) => inner.reap(),
            None => return,
        }
    }
}

/// Renews this instance's cluster leases every third of the lease time, and hands surplus
/// slots back whenever a connection closed; closes idle connections of servers on which the
/// instance holds more connections than slots. Hands every slot back when the engine stops.
async fn heartbeat<C: TenantConnector>(
    engine: Weak<Inner<C>>,
    cluster: Arc<Cluster>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(cluster.interval()) => {}
            () = cluster.woken() => {}
        }
        let over = cluster.beat().await;
        match engine.upgrade() {
            Some(inner) => {
                for server in &over {
                    inner.close_idle_on(server);
                }
            }
            None => break,
        }
    }
    cluster.release_all(super::CLOSE_TIMEOUT).await;
}
