//! Entering a tenant's verified context on a session.

use std::sync::atomic::{AtomicI64, Ordering};

use sqlx::PgConnection;
use tenant_manager_core::{Entity, Error, Result, TenantId};

use crate::credentials::WallKeys;
use crate::pg::SqlxResultExt;

/// Nonces of this process: one counter for every connection, so each backend sees only
/// increasing nonces. Starts above any value a restarted process could have used on a backend
/// it still holds (it holds none: backends die with their client connections).
static NONCE: AtomicI64 = AtomicI64::new(0);

/// The next proof nonce: strictly increasing within the process.
pub(crate) fn next_nonce() -> i64 {
    NONCE.fetch_add(1, Ordering::Relaxed) + 1
}

/// A backend's identity as proofs bind it: its pid and its start (µs since the epoch), read
/// once per connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WallSession {
    /// `pg_backend_pid()`.
    pub pid: i32,
    /// `backend_start` of the backend, in µs since the Unix epoch.
    pub backend_start_us: i64,
}

/// Reads the connected backend's identity (`wall.session_id()`).
///
/// # Errors
/// As the query; `42883`/`3F000` (no wall in this database) map to `InvalidInput`/`Internal`
/// through [`crate::map_sqlx`].
pub async fn session_id(conn: &mut PgConnection) -> Result<WallSession> {
    let (pid, backend_start_us): (i32, i64) =
        sqlx::raw_sql("SELECT pid, backend_start_us FROM wall.session_id()")
            .fetch_one(&mut *conn)
            .await
            .and_then(|row| {
                use sqlx::Row;
                Ok((row.try_get(0)?, row.try_get(1)?))
            })
            .map_db(Entity::Tenant)?;
    Ok(WallSession {
        pid,
        backend_start_us,
    })
}

/// `SELECT wall.enter(...)` for `tenant` on `session` with a fresh nonce, every value a
/// literal (simple protocol, no prepared statement involved).
///
/// # Errors
/// `Internal` if signing fails.
pub(crate) fn enter_statement(
    keys: &WallKeys,
    session: WallSession,
    tenant: TenantId,
) -> Result<String> {
    let nonce = next_nonce();
    let proof = keys.sign(tenant, session.pid, session.backend_start_us, nonce)?;
    // A uuid, integers and hex digits: nothing to quote.
    Ok(format!(
        "SELECT wall.enter('{tenant}'::uuid, {nonce}, {}, '{proof}')",
        keys.key_id()
    ))
}

/// The error of a proof the database refused.
pub(crate) fn refused(keys: &WallKeys) -> Error {
    Error::internal_with(
        "the tenant wall refused the proof",
        format!(
            "wall key {} is not valid in this database (run `tenant-cli wall rotate-key`?)",
            keys.key_id()
        ),
    )
}

/// Enters `tenant`'s verified context on `conn` (two round trips), for work outside the pools:
/// migrations, seeds, backups. Policies behind the wall then show this session `tenant`'s rows
/// only, whatever its role. The verdict lasts until the session ends, `DISCARD SEQUENCES`, or
/// another enter.
///
/// # Errors
/// `Internal` when the database refuses the proof (a key it does not know or no longer
/// accepts); as the queries otherwise.
pub async fn enter(conn: &mut PgConnection, keys: &WallKeys, tenant: TenantId) -> Result<()> {
    let session = session_id(conn).await?;
    let sql = enter_statement(keys, session, tenant)?;
    let entered: bool = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .fetch_one(&mut *conn)
        .await
        .and_then(|row| sqlx::Row::try_get(&row, 0))
        .map_db(Entity::Tenant)?;
    if entered { Ok(()) } else { Err(refused(keys)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_rise() {
        assert!(next_nonce() < next_nonce());
    }
}
