//! `StorageMeter`: how many bytes a tenant's data takes.

use async_trait::async_trait;

use crate::domain::Tenant;
use crate::error::Result;

/// Measures the storage a tenant uses, for the `storage_bytes` quota.
///
/// # Contract
/// - `measure` reads only the tenant's own storage (its database, its schema, or its rows of
///   shared tables) and returns bytes; its cost is bounded by the size of the tenant's
///   catalog entries or rows, never by other tenants' data.
/// - The answer is a measurement, not an accounting: it may lag behind writes (Postgres
///   counts pages, not rows) and is stored with
///   [`QuotaEnforcer::set_usage`](crate::traits::QuotaEnforcer::set_usage).
///
/// # Errors
/// `NotReady` when the tenant has no storage yet; `Unavailable` when its server cannot be
/// reached.
#[async_trait]
pub trait StorageMeter: std::fmt::Debug + Send + Sync + 'static {
    /// The bytes `tenant`'s data takes now.
    async fn measure(&self, tenant: &Tenant) -> Result<u64>;
}
