//! [`Leader`]: runs a maintenance pass on one instance at a time. With Redis, a lease in
//! Redis (kept alive while the pass runs); else, with Postgres, a session advisory lock on a
//! connection of its own to the global database; else (embedded, one process) no lock.

use std::future::Future;
use std::time::Duration;

use tenant_manager::postgres::sqlx::postgres::PgConnectOptions;
use tenant_manager::postgres::sqlx::{ConnectOptions, Connection};
use tenant_manager::redis::RedisLock;
use tenant_manager::{Error, Result};

use crate::config::Config;

/// How long a Redis lease lasts without being extended.
const LEASE: Duration = Duration::from_secs(60);
/// How often a held Redis lease is extended.
const KEEP_ALIVE: Duration = Duration::from_secs(20);

/// Where the "one instance at a time" of maintenance passes is decided.
#[derive(Debug, Clone)]
pub(crate) struct Leader {
    redis: Option<RedisLock>,
    postgres: Option<PgConnectOptions>,
}

impl Leader {
    /// Redis leases when Redis is configured, else Postgres advisory locks when Postgres is.
    pub(crate) fn new(redis: Option<RedisLock>, config: &Config) -> Self {
        Self {
            redis,
            postgres: config.database.global.clone(),
        }
    }

    /// Runs `work` if no other instance runs the pass `name` now; `None` when one does.
    ///
    /// # Errors
    /// `Unavailable` when the lock cannot be asked for.
    pub(crate) async fn run_exclusive<F: Future>(
        &self,
        name: &str,
        work: F,
    ) -> Result<Option<F::Output>> {
        if let Some(redis) = &self.redis {
            let Some(guard) = redis.try_acquire(name, LEASE).await? else {
                return Ok(None);
            };
            let work = std::pin::pin!(work);
            let mut work = work;
            let mut ticks = tokio::time::interval(KEEP_ALIVE);
            ticks.tick().await;
            let out = loop {
                tokio::select! {
                    out = &mut work => break out,
                    _ = ticks.tick() => match guard.extend(LEASE).await {
                        Ok(true) => {}
                        Ok(false) => tracing::warn!(pass = name, "maintenance lease lost"),
                        Err(error) => tracing::warn!(pass = name, %error, "lease not extended"),
                    },
                }
            };
            let _ = guard.release().await;
            return Ok(Some(out));
        }
        if let Some(options) = &self.postgres {
            let mut conn = options
                .connect()
                .await
                .map_err(|e| Error::unavailable("postgres", e))?;
            let taken: bool = tenant_manager::postgres::sqlx::query_scalar(
                "SELECT pg_try_advisory_lock(('x' || substr(md5($1), 1, 16))::bit(64)::bigint)",
            )
            .bind(format!("tenant-manager:maintenance:{name}"))
            .fetch_one(&mut conn)
            .await
            .map_err(|e| Error::unavailable("postgres", e))?;
            let out = if taken { Some(work.await) } else { None };
            // Closing the session releases the lock.
            let _ = conn.close().await;
            return Ok(out);
        }
        Ok(Some(work.await))
    }
}
