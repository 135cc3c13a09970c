//! Advisory locks: one key per tenant (provisioning, migrating) or per shared object.

use sha2::{Digest, Sha256};
use sqlx::{PgPool, Postgres, Transaction};
use tenant_manager_core::{Entity, Result, TenantId};

use crate::error::SqlxResultExt;

/// A stable 64-bit advisory lock key for a namespace and its parts.
pub(crate) fn lock_key(namespace: &str, parts: &[&str]) -> i64 {
    let mut hash = Sha256::new();
    hash.update(b"tenant-manager:");
    hash.update(namespace.as_bytes());
    for part in parts {
        hash.update([0u8]);
        hash.update(part.as_bytes());
    }
    let digest = hash.finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

/// The key that serialises everything done to one tenant's storage.
pub(crate) fn tenant_key(tenant: TenantId) -> i64 {
    lock_key("tenant", &[&tenant.to_string()])
}

/// A per-tenant lock held on the global database: a transaction holding
/// `pg_advisory_xact_lock`, so the lock ends with the transaction even when the holder
/// errors out, panics or loses its connection.
#[derive(Debug)]
pub(crate) struct TenantLock {
    tx: Transaction<'static, Postgres>,
}

impl TenantLock {
    /// Waits for the tenant's lock.
    pub(crate) async fn acquire(pool: &PgPool, tenant: TenantId) -> Result<Self> {
        let mut tx = pool.begin().await.map_db(Entity::Tenant)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(tenant_key(tenant))
            .execute(&mut *tx)
            .await
            .map_db(Entity::Tenant)?;
        Ok(Self { tx })
    }

    /// Releases the lock now (dropping the value releases it too, on the connection's return).
    pub(crate) async fn release(self) -> Result<()> {
        self.tx.rollback().await.map_db(Entity::Tenant)
    }
}
