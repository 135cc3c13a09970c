//! [`RedisLock`]: a lease on a named resource, for work that must not run twice.

use std::fmt;
use std::time::Duration;

use tenant_manager_core::{Error, Result};
use tokio::time::Instant;

use crate::pool::RedisPool;
use crate::scripts;

/// Leases on named resources, held by an owner token: `SET key token NX PX ttl` to take one,
/// compare-and-delete (Lua) to release it, compare-and-`PEXPIRE` to extend it.
///
/// A lease expires after its TTL even if its holder hangs or dies, so the holder must finish
/// (or [`LockGuard::extend`]) within the TTL. Releasing or extending a lease that expired and
/// was taken by someone else does nothing and reports `false`: a holder never frees another's
/// lease. This is a single-Redis lock: it protects against concurrent workers, not against a
/// Redis failover that loses the key.
#[derive(Debug, Clone)]
pub struct RedisLock {
    pool: RedisPool,
}

/// A held lease. Release it with [`LockGuard::release`]; dropping it releases it in the
/// background (or lets it expire when no runtime is left).
#[must_use = "the lease is released when the guard is dropped"]
pub struct LockGuard {
    pool: RedisPool,
    resource: String,
    key: String,
    token: String,
    released: bool,
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("resource", &self.resource)
            .field("released", &self.released)
            .finish_non_exhaustive()
    }
}

/// Longest lease, and the step between tries of [`RedisLock::acquire`].
const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
const RETRY_STEP: Duration = Duration::from_millis(25);

impl RedisLock {
    /// Locks on `pool`.
    pub fn new(pool: &RedisPool) -> Self {
        Self { pool: pool.clone() }
    }

    /// Takes the lease on `resource` for `ttl` if it is free.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad `resource` (1 to 200 printable ASCII characters, no
    /// spaces) or a `ttl` outside 1 ms ..= 24 h; [`Error::Unavailable`].
    pub async fn try_acquire(&self, resource: &str, ttl: Duration) -> Result<Option<LockGuard>> {
        validate_resource(resource)?;
        let ttl_ms = ttl_ms(ttl)?;
        let key = self.pool.keys().lock(resource);
        let token = format!("{:032x}", rand::random::<u128>());
        let taken: Option<String> = self
            .pool
            .query(
                redis::cmd("SET")
                    .arg(&key)
                    .arg(&token)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms),
            )
            .await?;
        Ok(taken.map(|_| LockGuard {
            pool: self.pool.clone(),
            resource: resource.to_owned(),
            key,
            token,
            released: false,
        }))
    }

    /// Takes the lease on `resource`, trying again until `wait` has passed.
    ///
    /// # Errors
    /// As [`RedisLock::try_acquire`].
    pub async fn acquire(
        &self,
        resource: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<Option<LockGuard>> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(guard) = self.try_acquire(resource, ttl).await? {
                return Ok(Some(guard));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            // Jitter spreads contenders so they do not retry in lockstep.
            let jitter = Duration::from_millis(rand::random_range(0..25));
            tokio::time::sleep(left.min(RETRY_STEP + jitter)).await;
        }
    }
}

impl LockGuard {
    /// The resource this lease is on.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// Sets the lease's remaining time to `ttl`, if it is still held.
    ///
    /// Returns `false` when the lease was lost (it expired, maybe taken by another holder).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a `ttl` outside 1 ms ..= 24 h; [`Error::Unavailable`].
    pub async fn extend(&self, ttl: Duration) -> Result<bool> {
        let ttl_ms = ttl_ms(ttl)?;
        let extended: i64 = self
            .pool
            .invoke(
                scripts::LOCK_EXTEND
                    .key(&self.key)
                    .arg(&self.token)
                    .arg(ttl_ms),
            )
            .await?;
        Ok(extended == 1)
    }

    /// Releases the lease if it is still held; returns `false` when it had been lost.
    ///
    /// # Errors
    /// [`Error::Unavailable`]; the lease then expires by itself.
    pub async fn release(mut self) -> Result<bool> {
        self.released = true;
        release(&self.pool, &self.key, &self.token).await
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let pool = self.pool.clone();
            let key = std::mem::take(&mut self.key);
            let token = std::mem::take(&mut self.token);
            runtime.spawn(async move {
                if let Err(err) = release(&pool, &key, &token).await {
                    tracing::warn!(error = %err, "lock release failed; it will expire");
                }
            });
        }
    }
}

async fn release(pool: &RedisPool, key: &str, token: &str) -> Result<bool> {
    let released: i64 = pool
        .invoke(scripts::LOCK_RELEASE.key(key).arg(token))
        .await?;
    Ok(released == 1)
}

fn validate_resource(resource: &str) -> Result<()> {
    if (1..=200).contains(&resource.len()) && resource.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(Error::invalid(
            "resource",
            "must be 1 to 200 printable ASCII characters without spaces",
        ))
    }
}

fn ttl_ms(ttl: Duration) -> Result<u64> {
    if ttl < Duration::from_millis(1) || ttl > MAX_TTL {
        return Err(Error::invalid("ttl", "must be between 1 ms and 24 hours"));
    }
    Ok(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
}
