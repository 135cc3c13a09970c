//! The server map: which Postgres servers tenants can be placed on.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use tenant_manager_core::{Error, ServerId};

/// Connect options of one database server, as its superuser/admin (for provisioning) .
#[derive(Clone)]
pub struct ServerConfig {
    /// Admin connect options; the database is replaced per use.
    pub admin: PgConnectOptions,
}

impl fmt::Debug for ServerConfig {
    /// Prints host, port and user, never the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("host", &self.admin.get_host())
            .field("port", &self.admin.get_port())
            .field("user", &self.admin.get_username())
            .finish()
    }
}

/// Maps [`ServerId`]s to servers. A deployment with one server has just `default`.
#[derive(Debug, Clone, Default)]
pub struct ServerMap {
    servers: BTreeMap<ServerId, ServerConfig>,
}

impl ServerMap {
    /// A map with one server, `default`, from an admin URL.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on field `database_url` when the URL does not parse.
    pub fn single(admin_url: &str) -> Result<Self, Error> {
        Self::default().with_server(ServerId::default_server(), admin_url)
    }

    /// Adds a server from its admin URL.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on field `database_url` when the URL does not parse.
    pub fn with_server(mut self, id: ServerId, admin_url: &str) -> Result<Self, Error> {
        let admin = PgConnectOptions::from_str(admin_url)
            .map_err(|_| Error::invalid("database_url", "is not a valid postgres URL"))?;
        self.servers.insert(id, ServerConfig { admin });
        Ok(self)
    }

    /// Adds a server from connect options.
    #[must_use]
    pub fn with_options(mut self, id: ServerId, admin: PgConnectOptions) -> Self {
        self.servers.insert(id, ServerConfig { admin });
        self
    }

    /// The server's config.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on field `placement.server` for an unknown server.
    pub fn get(&self, id: &ServerId) -> Result<&ServerConfig, Error> {
        self.servers
            .get(id)
            .ok_or_else(|| Error::invalid("placement.server", "unknown database server"))
    }

    /// Admin connect options of `database` on server `id`.
    ///
    /// # Errors
    /// As [`ServerMap::get`].
    pub fn admin_options(&self, id: &ServerId, database: &str) -> Result<PgConnectOptions, Error> {
        Ok(self.get(id)?.admin.clone().database(database))
    }

    /// The server ids, in order.
    pub fn ids(&self) -> impl Iterator<Item = &ServerId> {
        self.servers.keys()
    }
}
