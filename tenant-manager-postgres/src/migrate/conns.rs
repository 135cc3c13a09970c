//! Admin connections a fleet run reuses from one tenant to the next of the same database.
//!
//! A new backend per tenant costs a fork, authentication and cold catalog caches: the wall's
//! catalog queries then run several times slower than on a warm backend. A fleet run keeps
//! the connections of tenants that migrated cleanly, resets them and hands them to the next
//! tenant of the same database; at most as many stay open as tenants migrate at once.

use std::collections::HashMap;
use std::sync::Mutex;

use sqlx::PgConnection;
use tenant_manager_core::{Result, ServerId};

use crate::pg;
use crate::storage::{Target, TenantStorage};

/// Clears what a tenant's migration may have left on the session before the next tenant uses
/// it (simple protocol, one round trip): cursors, role, every setting (`search_path`,
/// `app.tenant_id`), `LISTEN`s, advisory locks, temporary objects, and sequence state (so the
/// wall's verdict, which rests on this session's `currval`, is gone). The last statement
/// counts prepared statements made by SQL `PREPARE`: one of them could shadow the driver's, so
/// such a connection is closed instead.
const RESET: &str = "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *; \
     SELECT pg_catalog.pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES; \
     SELECT count(*) FROM pg_catalog.pg_prepared_statements WHERE from_sql";

/// Idle admin connections of a fleet run, per database.
pub(crate) struct Connections<'a> {
    storage: &'a TenantStorage,
    /// Whether connections are kept for the next tenant (else closed at check-in).
    reuse: bool,
    idle: Mutex<HashMap<(ServerId, String), Vec<PgConnection>>>,
}

impl<'a> Connections<'a> {
    /// No connection yet; connections are kept for the next tenant.
    pub(crate) fn new(storage: &'a TenantStorage) -> Self {
        Self {
            storage,
            reuse: true,
            idle: Mutex::new(HashMap::new()),
        }
    }

    /// For one tenant: every connection is closed at check-in.
    pub(crate) fn single(storage: &'a TenantStorage) -> Self {
        Self {
            reuse: false,
            ..Self::new(storage)
        }
    }

    /// The storage the connections go to.
    pub(crate) fn storage(&self) -> &'a TenantStorage {
        self.storage
    }

    /// An idle connection to `target`'s database, or a new one.
    ///
    /// # Errors
    /// As [`TenantStorage::connect`].
    pub(crate) async fn checkout(&self, target: &Target) -> Result<PgConnection> {
        let key = (target.server.clone(), target.database.as_str().to_owned());
        let idle = self
            .idle
            .lock()
            .ok()
            .and_then(|mut idle| idle.get_mut(&key).and_then(Vec::pop));
        match idle {
            Some(conn) => Ok(conn),
            None => self.storage.connect(&target.server, &target.database).await,
        }
    }

    /// Gives back a connection whose work ended cleanly (no transaction open): reset, it waits
    /// for the next tenant of its database; a connection that fails the reset is closed.
    pub(crate) async fn checkin(&self, target: &Target, mut conn: PgConnection) {
        if !self.reuse {
            pg::close(conn).await;
            return;
        }
        let prepared: std::result::Result<i64, _> = async {
            let mut rows = sqlx::raw_sql(RESET).fetch_all(&mut conn).await?;
            let last = rows.pop().ok_or(sqlx::Error::RowNotFound)?;
            sqlx::Row::try_get::<i64, _>(&last, 0)
        }
        .await;
        if !matches!(prepared, Ok(0)) {
            pg::close(conn).await;
            return;
        }
        let key = (target.server.clone(), target.database.as_str().to_owned());
        let rejected = match self.idle.lock() {
            Ok(mut idle) => {
                idle.entry(key).or_default().push(conn);
                None
            }
            Err(_) => Some(conn),
        };
        if let Some(conn) = rejected {
            pg::close(conn).await;
        }
    }

    /// Closes every idle connection.
    pub(crate) async fn close(self) {
        let idle = self.idle.into_inner().unwrap_or_else(|e| e.into_inner());
        for conn in idle.into_values().flatten() {
            pg::close(conn).await;
        }
    }
}
