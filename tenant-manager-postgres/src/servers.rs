//! The server map: which Postgres servers tenants can be placed on.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use tenant_manager_core::{Error, Secret, ServerId};

/// Connect options of one database server, as its superuser/admin (for provisioning) .
#[derive(Clone)]
pub struct ServerConfig {
    /// Admin connect options; the database is replaced per use.
    pub admin: PgConnectOptions,
    /// The admin password, kept apart for child processes (`pg_dump` gets it through its
    /// environment, never its command line). `None` with trust, peer or pgpass authentication.
    pub admin_password: Option<Secret>,
    /// Its streaming replicas (hot standbys), in order; read-only checkouts may go there
    /// ([`crate::replicas`]).
    pub replicas: Vec<ReplicaConfig>,
}

/// A streaming replica of a server: a hot standby of the same cluster, so the same roles and
/// passwords; only where to connect differs.
#[derive(Clone)]
pub struct ReplicaConfig {
    /// Connect options of the monitor's login on the replica (from its URL); pools take only
    /// its host and port, and keep the primary's logins.
    pub admin: PgConnectOptions,
}

impl fmt::Debug for ReplicaConfig {
    /// Host and port, never the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplicaConfig")
            .field("host", &self.admin.get_host())
            .field("port", &self.admin.get_port())
            .finish()
    }
}

impl fmt::Debug for ServerConfig {
    /// Prints host, port and user, never the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("host", &self.admin.get_host())
            .field("port", &self.admin.get_port())
            .field("user", &self.admin.get_username())
            .field("replicas", &self.replicas)
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
        let admin_password = url_password(admin_url).map(Secret::new);
        self.servers.insert(
            id,
            ServerConfig {
                admin,
                admin_password,
                replicas: Vec::new(),
            },
        );
        Ok(self)
    }

    /// Adds a streaming replica to server `id`, from a URL of a login on it (the lag monitor's;
    /// the pools connect with the primary's logins, at the replica's host and port).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on field `placement.server` for an unknown server, on
    /// `replica_url` when the URL does not parse.
    pub fn with_replica(mut self, id: &ServerId, url: &str) -> Result<Self, Error> {
        let admin = PgConnectOptions::from_str(url)
            .map_err(|_| Error::invalid("replica_url", "is not a valid postgres URL"))?;
        let server = self
            .servers
            .get_mut(id)
            .ok_or_else(|| Error::invalid("placement.server", "unknown database server"))?;
        server.replicas.push(ReplicaConfig { admin });
        Ok(self)
    }

    /// Adds a streaming replica to server `id` from connect options (see
    /// [`with_replica`](Self::with_replica)). A replica of an unknown server is ignored: add
    /// the server first.
    #[must_use]
    pub fn with_replica_options(mut self, id: &ServerId, admin: PgConnectOptions) -> Self {
        if let Some(server) = self.servers.get_mut(id) {
            server.replicas.push(ReplicaConfig { admin });
        }
        self
    }

    /// Adds a server from connect options (set the password there too, with
    /// [`PgConnectOptions::password`]).
    #[must_use]
    pub fn with_options(
        mut self,
        id: ServerId,
        admin: PgConnectOptions,
        admin_password: Option<Secret>,
    ) -> Self {
        self.servers.insert(
            id,
            ServerConfig {
                admin,
                admin_password,
                replicas: Vec::new(),
            },
        );
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

/// The percent-decoded password of a `postgres://user:password@host/...` URL, if it has one.
fn url_password(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    let encoded = userinfo.split_once(':')?.1;
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| encoded.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match decoded {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_extracted_and_hidden() {
        assert_eq!(
            url_password("postgres://app:s%40cr%3At@db:5432/x").as_deref(),
            Some("s@cr:t")
        );
        assert_eq!(url_password("postgres://app@db/x"), None);
        assert_eq!(url_password("postgres://db/x"), None);
        let map = ServerMap::single("postgres://app:hunter2@db:5432/postgres")
            .unwrap_or_else(|e| panic!("{e}"));
        let server = map
            .get(&ServerId::default_server())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!format!("{server:?}").contains("hunter2"));
        assert_eq!(
            server.admin_password.as_ref().map(Secret::expose),
            Some("hunter2")
        );
    }
}
