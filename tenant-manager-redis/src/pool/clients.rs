//! How the pools reach Redis: clients for the configured URL or cluster seeds, credentials,
//! TLS roots and timeouts.

use redis::cluster::ClusterClientBuilder;
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo,
    TlsCertificates,
};
use tenant_manager_core::{Error, Result};

use super::handle::Connector;
use crate::config::RedisConfig;

/// How the pools connect: the command and blocking connectors and the pub/sub clients.
pub(super) struct Clients {
    pub(super) commands: Connector,
    pub(super) blocking: Connector,
    pub(super) pubsub: Vec<Client>,
    /// The first seed's settings, for clients of the cluster's other nodes.
    pub(super) template: Option<(ConnectionInfo, bool)>,
}

/// The connection settings of `url` with the configured credentials; whether it is TLS.
fn connection_info(config: &RedisConfig, url: &str) -> Result<(ConnectionInfo, bool)> {
    let info = url
        .into_connection_info()
        .map_err(|_| Error::invalid("redis.url", "must be a redis:// or rediss:// URL"))?;
    let mut settings = info.redis_settings().clone();
    if let Some(username) = &config.username {
        settings = settings.set_username(username);
    }
    if let Some(password) = &config.password {
        settings = settings.set_password(password.expose());
    }
    let info = info.set_redis_settings(settings);
    let tls = matches!(info.addr(), ConnectionAddr::TcpTls { .. });
    if tls {
        ensure_crypto_provider();
    }
    if config.tls_root_certs.is_some() && !tls {
        return Err(Error::invalid(
            "redis.tls_root_certs",
            "needs a rediss:// URL",
        ));
    }
    Ok((info, tls))
}

/// A standalone client for `info`, trusting the configured TLS roots.
pub(super) fn client(config: &RedisConfig, info: ConnectionInfo, tls: bool) -> Result<Client> {
    let client = match (&config.tls_root_certs, tls) {
        (Some(pem), true) => Client::build_with_tls(
            info,
            TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.clone()),
            },
        ),
        _ => Client::open(info),
    };
    client.map_err(|_| Error::invalid("redis.url", "is not a usable Redis address"))
}

/// Connectors for the configured URL (or cluster seeds), credentials, TLS roots and timeouts.
pub(super) fn build_clients(config: &RedisConfig) -> Result<Clients> {
    let mut infos = Vec::new();
    for url in config.urls() {
        infos.push(connection_info(config, url)?);
    }
    let pubsub = infos
        .iter()
        .map(|(info, tls)| client(config, info.clone(), *tls))
        .collect::<Result<Vec<_>>>()?;
    if !config.cluster {
        let single = pubsub
            .first()
            .cloned()
            .ok_or_else(|| Error::invalid("redis.url", "must not be empty"))?;
        let connection = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.command_timeout));
        return Ok(Clients {
            commands: Connector::Single(single.clone(), connection.clone()),
            blocking: Connector::Single(single, connection),
            pubsub,
            template: None,
        });
    }
    let builder = || {
        let mut builder = ClusterClientBuilder::new(infos.iter().map(|(info, _)| info.clone()))
            .connection_timeout(config.connect_timeout);
        if let Some(pem) = &config.tls_root_certs {
            builder = builder.certs(TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.clone()),
            });
        }
        builder
    };
    let cluster = |builder: ClusterClientBuilder| {
        builder.build().map_err(|_| {
            Error::invalid(
                "redis.url",
                "is not a usable list of Redis Cluster seeds (same credentials and TLS for all)",
            )
        })
    };
    // The slot map, then a connection to each master: bounded by a few connect timeouts.
    let handshake = config.connect_timeout.saturating_mul(3);
    // Commands: every reply, redirections and retries included, within the command timeout.
    let commands = cluster(builder().response_timeout(config.command_timeout))?;
    // Blocking reads: no reply timeout of the client's; `query_blocking` bounds each read.
    let blocking = cluster(builder().overall_response_timeout(None))?;
    Ok(Clients {
        commands: Connector::Cluster(commands, handshake),
        blocking: Connector::Cluster(blocking, handshake),
        pubsub,
        template: infos.first().cloned(),
    })
}

/// rustls needs a process-wide crypto provider; install ring's unless the host chose one.
fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
