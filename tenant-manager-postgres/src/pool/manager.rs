//! `PgConnectionManager`: a `bb8` manager of sqlx `PgConnection`s.

use std::fmt;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};
use tenant_manager_core::{Entity, Error};

use crate::pg::map_sqlx;

/// Opens sqlx `PgConnection`s with fixed connect options, for `bb8` (on its own, or under
/// the pool engine through [`PgTenantConnector`](super::PgTenantConnector)).
///
/// `is_valid` pings the server (one round trip); `has_broken` cannot tell synchronously and
/// says no, so a connection broken while idle is caught by the checkout test instead.
/// Errors are mapped by [`map_sqlx`]: a refused or dropped connection is `Unavailable`.
#[derive(Clone)]
pub struct PgConnectionManager {
    options: PgConnectOptions,
}

impl PgConnectionManager {
    /// A manager connecting with `options`.
    pub fn new(options: PgConnectOptions) -> Self {
        Self { options }
    }

    /// The connect options.
    pub fn options(&self) -> &PgConnectOptions {
        &self.options
    }
}

impl fmt::Debug for PgConnectionManager {
    /// Host, port, database, user and application name; never the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConnectionManager")
            .field("host", &self.options.get_host())
            .field("port", &self.options.get_port())
            .field("database", &self.options.get_database())
            .field("user", &self.options.get_username())
            .field("application_name", &self.options.get_application_name())
            .finish()
    }
}

impl bb8::ManageConnection for PgConnectionManager {
    type Connection = PgConnection;
    type Error = Error;

    async fn connect(&self) -> Result<PgConnection, Error> {
        self.options
            .connect()
            .await
            .map_err(|e| map_sqlx(Entity::Tenant, e))
    }

    async fn is_valid(&self, conn: &mut PgConnection) -> Result<(), Error> {
        conn.ping().await.map_err(|e| map_sqlx(Entity::Tenant, e))
    }

    fn has_broken(&self, _conn: &mut PgConnection) -> bool {
        false
    }
}
