//! The per-tenant migration lock, waited for without holding a snapshot.
//!
//! A statement blocked in `pg_advisory_lock` holds a snapshot, and `CREATE INDEX CONCURRENTLY`
//! waits for every older snapshot of its database. So a migration waiting for a tenant's lock
//! while the holder builds an index concurrently is a deadlock, which Postgres breaks by
//! aborting one of the two. The lock is therefore polled with `pg_try_advisory_*lock`, and the
//! waiting session sleeps between attempts with no statement running.

use std::time::Duration;

use sqlx::PgConnection;
use tenant_manager_core::{Entity, Result};

use crate::error::SqlxResultExt;

/// First pause between two attempts; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(10);
/// Longest pause between two attempts.
const MAX_PAUSE: Duration = Duration::from_millis(500);

/// How long a lock is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hold {
    /// Until the current transaction ends (`pg_try_advisory_xact_lock`).
    Transaction,
    /// Until [`release`] or the end of the session (`pg_try_advisory_lock`).
    Session,
}

/// Takes the advisory lock `key` on `conn`, waiting as long as another session holds it.
///
/// # Errors
/// `Unavailable` when the connection fails; `Internal` when Postgres refuses the query.
pub(crate) async fn acquire(conn: &mut PgConnection, key: i64, hold: Hold) -> Result<()> {
    let sql = match hold {
        Hold::Transaction => "SELECT pg_try_advisory_xact_lock($1)",
        Hold::Session => "SELECT pg_try_advisory_lock($1)",
    };
    let mut pause = FIRST_PAUSE;
    loop {
        let taken: bool = sqlx::query_scalar(sql)
            .bind(key)
            .fetch_one(&mut *conn)
            .await
            .map_db(Entity::Record)?;
        if taken {
            return Ok(());
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
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
        .map_db(Entity::Record)?;
    Ok(())
}
