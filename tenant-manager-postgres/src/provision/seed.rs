//! Seed data written into a new tenant's storage.

use std::fmt;

use async_trait::async_trait;
use sqlx::PgConnection;
use tenant_manager_core::{Result, Tenant};

/// Writes a new tenant's seed data (default settings, sample records).
///
/// # Contract
/// - Called once per provisioning run that reaches the `Seeded` step, inside a transaction
///   scoped to the tenant: its own role, its schema on `search_path`, or (shared isolation)
///   the shared tables' owner; behind the wall, in the tenant's verified context (so the
///   wall's row-level security shows and accepts this tenant's rows only).
/// - Must be idempotent: after a crash the step runs again (use `ON CONFLICT DO NOTHING`).
///
/// # Errors
/// Any error rolls the seed transaction back and fails provisioning at `Seeded`, resumable.
#[async_trait]
pub trait TenantSeeder: fmt::Debug + Send + Sync + 'static {
    /// Writes the seed data of `tenant` through `conn`.
    async fn seed(&self, tenant: &Tenant, conn: &mut PgConnection) -> Result<()>;
}
