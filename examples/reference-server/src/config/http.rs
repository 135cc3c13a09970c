//! The HTTP front: addresses, CORS origins, body limit, timeouts.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::app_env::AppEnv;
use super::env::EnvVars;
use super::origins::AllowedOrigins;
use crate::startup_error::ConfigError;

/// Listener and request handling settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpConfig {
    /// Address to listen on (`BIND_ADDRESS`, default `0.0.0.0`).
    pub bind: IpAddr,
    /// API port (`PORT`, default 3001; 0 picks a free port).
    pub port: u16,
    /// Port of `/metrics` when it is not `port` (`METRICS_PORT`; 0 picks a free port).
    pub metrics_port: Option<u16>,
    /// CORS origins (`ALLOWED_ORIGINS`; default `*` in development, none in production).
    pub allowed_origins: AllowedOrigins,
    /// Largest accepted request body (`REQUEST_BODY_LIMIT_BYTES`, default 1 MiB).
    pub body_limit_bytes: usize,
    /// Time a request may take before it is answered 503 (`REQUEST_TIMEOUT_MS`, default 30 s).
    pub request_timeout: Duration,
    /// Time in-flight requests get to finish on shutdown (`SHUTDOWN_TIMEOUT_MS`, default 30 s).
    pub shutdown_timeout: Duration,
    /// Reverse proxies in front that append to `X-Forwarded-For` (`TRUSTED_PROXY_HOPS`,
    /// default 0: rate limits count the connection's peer address).
    pub trusted_proxy_hops: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 3001,
            metrics_port: None,
            allowed_origins: AllowedOrigins::Any,
            body_limit_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(30),
            trusted_proxy_hops: 0,
        }
    }
}

impl HttpConfig {
    /// Sets the listen address and port.
    #[must_use]
    pub fn with_listen(mut self, bind: IpAddr, port: u16) -> Self {
        self.bind = bind;
        self.port = port;
        self
    }

    /// Serves `/metrics` on its own port.
    #[must_use]
    pub fn with_metrics_port(mut self, port: Option<u16>) -> Self {
        self.metrics_port = port;
        self
    }

    /// Sets the CORS origins.
    #[must_use]
    pub fn with_allowed_origins(mut self, origins: AllowedOrigins) -> Self {
        self.allowed_origins = origins;
        self
    }

    /// Sets the body limit.
    #[must_use]
    pub fn with_body_limit_bytes(mut self, limit: usize) -> Self {
        self.body_limit_bytes = limit;
        self
    }

    /// Sets the request timeout.
    #[must_use]
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets the shutdown grace period.
    #[must_use]
    pub fn with_shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// The validation pass of the HTTP variables.
    pub(super) fn from_vars(vars: &EnvVars, env: AppEnv) -> Result<Self, ConfigError> {
        if vars.port != 0 && vars.metrics_port == Some(vars.port) {
            return Err(ConfigError::new(
                "METRICS_PORT",
                "must differ from PORT (leave it unset to serve /metrics on PORT)",
            ));
        }
        let allowed_origins = match &vars.allowed_origins {
            Some(origins) => origins.clone(),
            None if env.is_production() => AllowedOrigins::List(Vec::new()),
            None => AllowedOrigins::Any,
        };
        Ok(Self {
            bind: vars.bind_address,
            port: vars.port,
            metrics_port: vars.metrics_port,
            allowed_origins,
            body_limit_bytes: vars.request_body_limit_bytes,
            request_timeout: Duration::from_millis(vars.request_timeout_ms),
            shutdown_timeout: Duration::from_millis(vars.shutdown_timeout_ms),
            trusted_proxy_hops: vars.trusted_proxy_hops,
        })
    }
}
