//! Advisory locks: one key per tenant (provisioning, migrating) or per shared object.

use std::time::Duration;

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

/// First and longest pause between two tries of a busy tenant lock.
const RETRY_FIRST: Duration = Duration::from_millis(10);
const RETRY_MAX: Duration = Duration::from_millis(250);

/// A per-tenant lock held on the global database: a transaction holding
/// `pg_advisory_xact_lock`, so the lock ends with the transaction even when the holder
/// errors out, is cancelled or loses its connection.
///
/// Waiting is a loop of `pg_try_advisory_xact_lock` with backoff, not a blocking
/// `pg_advisory_xact_lock`: a waiter holds no pooled connection between tries, so any number
/// of waiters cannot starve the holder of the connections it needs to record its steps.
#[derive(Debug)]
pub(crate) struct TenantLock {
    tx: Transaction<'static, Postgres>,
}

impl TenantLock {
    /// Waits for the tenant's lock.
    pub(crate) async fn acquire(pool: &PgPool, tenant: TenantId) -> Result<Self> {
        let key = tenant_key(tenant);
        let mut pause = RETRY_FIRST;
        loop {
            let mut tx = pool.begin().await.map_db(Entity::Tenant)?;
            let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
                .bind(key)
                .fetch_one(&mut *tx)
                .await
                .map_db(Entity::Tenant)?;
            if locked {
                return Ok(Self { tx });
            }
            tx.rollback().await.map_db(Entity::Tenant)?;
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RETRY_MAX);
        }
    }

    /// Releases the lock now (dropping the value releases it too, on the connection's return).
    pub(crate) async fn release(self) -> Result<()> {
        self.tx.rollback().await.map_db(Entity::Tenant)
    }
}
