//! `PoolManager`: hands out connections scoped to one tenant, inside a connection budget.

use std::fmt;
use std::ops::{Deref, DerefMut};

use async_trait::async_trait;
use serde::Serialize;

use crate::domain::{Tenant, TenantId};
use crate::error::Result;

/// A pooled connection scoped to one tenant. Dropping it returns the connection to its pool
/// (after the scope is reset) or closes it.
pub struct TenantConnection<C: 'static> {
    tenant: TenantId,
    guard: Box<dyn DerefMut<Target = C> + Send>,
}

impl<C: 'static> TenantConnection<C> {
    /// Wraps a pool's guard. Pool engines call this; hosts receive the result.
    pub fn new(tenant: TenantId, guard: Box<dyn DerefMut<Target = C> + Send>) -> Self {
        Self { tenant, guard }
    }

    /// The tenant this connection is scoped to.
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }
}

impl<C: 'static> Deref for TenantConnection<C> {
    type Target = C;
    fn deref(&self) -> &C {
        &self.guard
    }
}

impl<C: 'static> DerefMut for TenantConnection<C> {
    fn deref_mut(&mut self) -> &mut C {
        &mut self.guard
    }
}

impl<C: 'static> fmt::Debug for TenantConnection<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantConnection")
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

/// Connection counts of one tenant's pool.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TenantPoolStats {
    /// The tenant.
    pub tenant: Option<TenantId>,
    /// Pool key (tenant id, or server/database for shared pools).
    pub key: String,
    /// Open connections.
    pub open: u32,
    /// Open and idle.
    pub idle: u32,
    /// Checked out.
    pub in_use: u32,
}

/// Connection counts of the whole pool manager.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PoolStats {
    /// Open connections, all pools together.
    pub open: u32,
    /// Open and idle.
    pub idle: u32,
    /// Checked out.
    pub in_use: u32,
    /// Pools currently open.
    pub pools: u32,
    /// The global cap.
    pub max_total: u32,
    /// The per-tenant cap.
    pub max_per_tenant: u32,
    /// Connections opened since start.
    pub connections_opened: u64,
    /// Idle connections closed to make room for another tenant.
    pub evictions: u64,
    /// Pools closed because they sat idle.
    pub idle_pools_closed: u64,
    /// Acquires that had to wait for the global budget.
    pub waits: u64,
    /// Acquires that gave up with `PoolExhausted`.
    pub timeouts: u64,
    /// Checkouts of shared pools handed a connection that still carried the tenant's scope
    /// (affinity): no statement sent.
    pub scope_reused: u64,
    /// Checkouts of shared pools whose connection carried another scope (or its own, kept too
    /// long): reset and scoped in one step.
    pub scope_switched: u64,
    /// Checkouts of shared pools that set the scope on a clean connection.
    pub scope_set: u64,
    /// Per-pool counts.
    pub per_pool: Vec<TenantPoolStats>,
}

/// Hands out connections scoped to one tenant.
///
/// # Contract
/// - Open connections never exceed the global cap nor the per-tenant cap.
/// - A connection returned for tenant A runs with A's scope only (own login, own
///   `search_path`, own verified tenant), never with another tenant's.
/// - A tenant's pool is created on first use and closed by [`close_tenant`](PoolManager::close_tenant)
///   or after sitting idle.
///
/// # Errors
/// - `PoolExhausted` when no connection could be had within the acquire timeout.
/// - `Suspended` / `NotReady` when the tenant is not `Active`.
/// - `Unavailable` when the database cannot be reached.
#[async_trait]
pub trait PoolManager: fmt::Debug + Send + Sync + 'static {
    /// The connection type handed out (for Postgres, `sqlx::PgConnection`).
    type Connection: Send + 'static;

    /// A connection scoped to `tenant`.
    async fn acquire(&self, tenant: &Tenant) -> Result<TenantConnection<Self::Connection>>;

    /// Closes the tenant's pool (on suspend or delete). Checked-out connections close on return.
    async fn close_tenant(&self, tenant: TenantId) -> Result<()>;

    /// Current counts.
    fn stats(&self) -> PoolStats;
}
