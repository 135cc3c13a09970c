//! Advisory locks: the keys that name them and the one way they are taken.
//!
//! A statement blocked in `pg_advisory_lock` holds a snapshot, and `CREATE INDEX CONCURRENTLY`
//! waits for every older snapshot of its database: a migration waiting for a tenant's lock
//! while the holder builds an index concurrently would be a deadlock, which Postgres breaks by
//! aborting one of the two. So a lock is polled with `pg_try_advisory_*lock`, the waiter
//! sleeping between attempts with no statement running ([`acquire`]); [`TenantLock`] goes
//! further and holds no pooled connection between attempts.

use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use tenant_manager_core::{Entity, Result, TenantId};

use super::error::SqlxResultExt;
use crate::ident::Ident;

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

/// How long a lock is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hold {
    /// Until the current transaction ends (`pg_try_advisory_xact_lock`).
    Transaction,
    /// Until [`release`] or the end of the session (`pg_try_advisory_lock`).
    Session,
}

/// First pause between two attempts; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(10);
/// Longest pause between two attempts.
const MAX_PAUSE: Duration = Duration::from_millis(250);

/// The growing pause between two attempts at a busy lock.
#[derive(Debug)]
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Self(FIRST_PAUSE)
    }

    async fn wait(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(MAX_PAUSE);
    }
}

/// One attempt at the lock `key`: whether this session holds it now.
async fn try_take(conn: &mut PgConnection, key: i64, hold: Hold) -> Result<bool> {
    let sql = match hold {
        Hold::Transaction => "SELECT pg_try_advisory_xact_lock($1)",
        Hold::Session => "SELECT pg_try_advisory_lock($1)",
    };
    sqlx::query_scalar(sql)
        .bind(key)
        .fetch_one(conn)
        .await
        .map_db(Entity::Tenant)
}

/// Takes the advisory lock `key` on `conn`, waiting as long as another session holds it.
///
/// # Errors
/// `Unavailable` when the connection fails; `Internal` when Postgres refuses the query.
pub(crate) async fn acquire(conn: &mut PgConnection, key: i64, hold: Hold) -> Result<()> {
    let mut backoff = Backoff::new();
    while !try_take(conn, key, hold).await? {
        backoff.wait().await;
    }
    Ok(())
}

/// Releases a lock taken with [`Hold::Session`] (nothing when this session does not hold it).
///
/// # Errors
/// As [`acquire`].
pub(crate) async fn release(conn: &mut PgConnection, key: i64) -> Result<()> {
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(key)
        .execute(conn)
        .await
        .map_db(Entity::Tenant)?;
    Ok(())
}

/// Serialises changes to the catalogue rows of a database shared by tenants (its ACL, the
/// shared schema, the shared owner role) until the current transaction ends: concurrent
/// `GRANT`s on one object otherwise fail with "tuple concurrently updated".
pub(crate) async fn lock_shared_database(conn: &mut PgConnection, database: &Ident) -> Result<()> {
    let key = lock_key("shared-database", &[database.as_str()]);
    acquire(conn, key, Hold::Transaction).await
}

/// A per-tenant lock held on the global database: a transaction holding
/// `pg_advisory_xact_lock`, so the lock ends with the transaction even when the holder
/// errors out, is cancelled or loses its connection.
///
/// Between two attempts the waiter's transaction is rolled back and its connection returned
/// to the pool: any number of waiters cannot starve the holder of the connections it needs
/// to record its steps.
#[derive(Debug)]
pub(crate) struct TenantLock {
    tx: Transaction<'static, Postgres>,
}

impl TenantLock {
    /// Waits for the tenant's lock.
    pub(crate) async fn acquire(pool: &PgPool, tenant: TenantId) -> Result<Self> {
        let key = tenant_key(tenant);
        let mut backoff = Backoff::new();
        loop {
            let mut tx = pool.begin().await.map_db(Entity::Tenant)?;
            if try_take(&mut tx, key, Hold::Transaction).await? {
                return Ok(Self { tx });
            }
            tx.rollback().await.map_db(Entity::Tenant)?;
            backoff.wait().await;
        }
    }

    /// Releases the lock now (dropping the value releases it too, on the connection's return).
    pub(crate) async fn release(self) -> Result<()> {
        self.tx.rollback().await.map_db(Entity::Tenant)
    }
}
