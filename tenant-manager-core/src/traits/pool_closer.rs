//! `PoolCloser`: the one method of a pool engine the tenant life cycle needs.

use async_trait::async_trait;

use super::PoolManager;
use crate::domain::TenantId;
use crate::error::Result;

/// Closes a tenant's connection pool when the tenant is suspended or deleted.
///
/// [`PoolManager`] has an associated connection type, so it cannot be held as one `dyn`
/// type; this trait is the one method the manager needs. Every `PoolManager` implements it,
/// so a pool engine can be passed as `Arc<dyn PoolCloser>` as it is.
///
/// # Contract
/// - After `close_pool` returns, no new connection is handed out from the tenant's old pool;
///   checked-out connections close when returned.
/// - Closing a tenant without a pool is `Ok`.
///
/// # Errors
/// `Unavailable` when the pool engine cannot be reached (for a remote engine).
#[async_trait]
pub trait PoolCloser: std::fmt::Debug + Send + Sync + 'static {
    /// Closes the tenant's pool.
    async fn close_pool(&self, tenant: TenantId) -> Result<()>;
}

#[async_trait]
impl<P: PoolManager + ?Sized> PoolCloser for P {
    async fn close_pool(&self, tenant: TenantId) -> Result<()> {
        self.close_tenant(tenant).await
    }
}
