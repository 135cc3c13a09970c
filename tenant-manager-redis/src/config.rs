//! Connection settings shared by every Redis component.

use std::fmt;
use std::time::Duration;

use tenant_manager_core::{Error, Result, Secret};

/// What [`RedisQuotaEnforcer`](crate::RedisQuotaEnforcer) answers when Redis cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum UnavailablePolicy {
    /// Return [`Error::Unavailable`] and let the caller decide (the default).
    #[default]
    ReportError,
    /// Admit the request, as if the limit were untouched (availability over enforcement).
    FailOpen,
    /// Refuse the request, asking the client to retry after the given delay.
    FailClosed {
        /// The `retry_after` of the refusal.
        retry_after: Duration,
    },
}

/// How to reach Redis and how the shared pool behaves.
///
/// Build with [`RedisConfig::new`] and the `with_*` setters; [`RedisPool::connect`] validates
/// it. `Debug` never prints the password nor credentials embedded in the URL.
///
/// [`RedisPool::connect`]: crate::RedisPool::connect
#[derive(Clone)]
#[non_exhaustive]
pub struct RedisConfig {
    /// `redis://host:port/db` or `rediss://host:port/db` (TLS). Credentials may be embedded,
    /// but prefer [`RedisConfig::password`]. With [`RedisConfig::cluster`], one or more seed
    /// nodes of the Redis Cluster separated by commas (`redis://a:6379,redis://b:6379`).
    pub url: String,
    /// Whether Redis is a Redis Cluster: commands go to the master of their keys' slot and
    /// follow `MOVED`/`ASK` redirections; `url` lists seed nodes.
    pub cluster: bool,
    /// ACL user name; `None` means the URL's, or `default`.
    pub username: Option<String>,
    /// Password (`REDIS_PASSWORD`); overrides one embedded in the URL.
    pub password: Option<Secret>,
    /// Prefix of every key and channel name, so deployments can share one Redis.
    pub key_prefix: String,
    /// Connections of the shared pool used for ordinary commands.
    pub pool_size: u32,
    /// Connections reserved for blocking reads (`XREAD BLOCK` of idle queue consumers), so
    /// they never delay ordinary commands.
    pub blocking_pool_size: u32,
    /// Bound on opening one TCP (and TLS) connection and its handshake.
    pub connect_timeout: Duration,
    /// Bound on one command's reply.
    pub command_timeout: Duration,
    /// Bound on waiting for a free pooled connection.
    pub acquire_timeout: Duration,
    /// After a failed connect, calls fail at once with `Unavailable` for this long while one
    /// background probe tries to reconnect; keeps a dead Redis from adding latency to every call.
    pub retry_interval: Duration,
    /// PEM root certificates trusted for `rediss://`, instead of the system's.
    pub tls_root_certs: Option<Vec<u8>>,
    /// Quota answer when Redis is unreachable.
    pub quota_unavailable: UnavailablePolicy,
}

impl RedisConfig {
    /// Settings for `url` with the defaults of [`RedisConfig::default`].
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }

    /// Settings for a Redis Cluster reached through `seeds` (one URL each; list several so
    /// start-up and the cache's subscriber survive the loss of one node).
    pub fn cluster<S: Into<String>>(seeds: impl IntoIterator<Item = S>) -> Self {
        let seeds: Vec<String> = seeds.into_iter().map(Into::into).collect();
        Self {
            url: seeds.join(","),
            cluster: true,
            ..Self::default()
        }
    }

    /// Sets whether Redis is a Redis Cluster (`url` then lists seed nodes, comma-separated).
    #[must_use]
    pub fn with_cluster(mut self, cluster: bool) -> Self {
        self.cluster = cluster;
        self
    }

    /// The URLs of `url`: the seed nodes in cluster mode (comma-separated), else the one URL.
    pub fn urls(&self) -> Vec<&str> {
        if self.cluster {
            self.url
                .split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .collect()
        } else {
            vec![self.url.as_str()]
        }
    }

    /// Sets the ACL user name.
    #[must_use]
    pub fn with_username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// Sets the password.
    #[must_use]
    pub fn with_password(mut self, password: impl Into<Secret>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Sets the key prefix.
    #[must_use]
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Sets the size of the command pool.
    #[must_use]
    pub fn with_pool_size(mut self, size: u32) -> Self {
        self.pool_size = size;
        self
    }

    /// Sets the size of the blocking-read pool.
    #[must_use]
    pub fn with_blocking_pool_size(mut self, size: u32) -> Self {
        self.blocking_pool_size = size;
        self
    }

    /// Sets the connect timeout.
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the command timeout.
    #[must_use]
    pub fn with_command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// Sets the pool acquire timeout.
    #[must_use]
    pub fn with_acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Sets how long calls fail fast after a failed connect.
    #[must_use]
    pub fn with_retry_interval(mut self, interval: Duration) -> Self {
        self.retry_interval = interval;
        self
    }

    /// Trusts these PEM root certificates for `rediss://`.
    #[must_use]
    pub fn with_tls_root_certs(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root_certs = Some(pem.into());
        self
    }

    /// Sets the quota answer when Redis is unreachable.
    #[must_use]
    pub fn with_quota_unavailable(mut self, policy: UnavailablePolicy) -> Self {
        self.quota_unavailable = policy;
        self
    }

    /// Checks every field.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the first bad field.
    pub fn validate(&self) -> Result<()> {
        validate_prefix(&self.key_prefix)?;
        if self.url.trim().is_empty() || self.urls().is_empty() {
            return Err(Error::invalid("redis.url", "must not be empty"));
        }
        if !self.cluster && self.url.contains(',') {
            return Err(Error::invalid(
                "redis.url",
                "lists several servers: only a Redis Cluster takes several seed URLs",
            ));
        }
        if !(1..=1024).contains(&self.pool_size) {
            return Err(Error::invalid("redis.pool_size", "must be 1 to 1024"));
        }
        if !(1..=1024).contains(&self.blocking_pool_size) {
            return Err(Error::invalid(
                "redis.blocking_pool_size",
                "must be 1 to 1024",
            ));
        }
        for (field, value) in [
            ("redis.connect_timeout", self.connect_timeout),
            ("redis.command_timeout", self.command_timeout),
            ("redis.acquire_timeout", self.acquire_timeout),
            ("redis.retry_interval", self.retry_interval),
        ] {
            if value.is_zero() || value > Duration::from_secs(3600) {
                return Err(Error::invalid(field, "must be between 1 ms and 1 hour"));
            }
        }
        if let UnavailablePolicy::FailClosed { retry_after } = self.quota_unavailable
            && retry_after > Duration::from_secs(86_400)
        {
            return Err(Error::invalid(
                "redis.quota_unavailable",
                "retry_after must be at most one day",
            ));
        }
        Ok(())
    }
}

impl Default for RedisConfig {
    /// `redis://127.0.0.1:6379`, prefix `tm:`, 16 + 8 connections, 1 s connect and command
    /// timeouts, 1 s acquire timeout, 250 ms fail-fast interval, errors reported to callers.
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".to_owned(),
            cluster: false,
            username: None,
            password: None,
            key_prefix: "tm:".to_owned(),
            pool_size: 16,
            blocking_pool_size: 8,
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_secs(1),
            acquire_timeout: Duration::from_secs(1),
            retry_interval: Duration::from_millis(250),
            tls_root_certs: None,
            quota_unavailable: UnavailablePolicy::ReportError,
        }
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact_url(&self.url))
            .field("cluster", &self.cluster)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("key_prefix", &self.key_prefix)
            .field("pool_size", &self.pool_size)
            .field("blocking_pool_size", &self.blocking_pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("retry_interval", &self.retry_interval)
            .field(
                "tls_root_certs",
                &self.tls_root_certs.as_ref().map(Vec::len),
            )
            .field("quota_unavailable", &self.quota_unavailable)
            .finish()
    }
}

/// The URL (or comma-separated URLs) with any `user:password@` part replaced by `***@`.
pub(crate) fn redact_url(url: &str) -> String {
    if url.contains(',') {
        return url.split(',').map(redact_url).collect::<Vec<_>>().join(",");
    }
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}***@{}", &url[..scheme_end + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// A key prefix: up to 128 printable ASCII characters, no spaces, no `{` or `}` (they would
/// change the hash slots of the keys).
pub(crate) fn validate_prefix(prefix: &str) -> Result<()> {
    let ok = prefix.len() <= 128
        && prefix
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'{' && b != b'}');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "redis.key_prefix",
            "must be at most 128 printable ASCII characters without spaces or braces",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_passwords_in_fields_and_urls() {
        let config = RedisConfig::new("redis://app:hunter2@cache:6379/0").with_password("s3cret");
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("redis://***@cache:6379/0"), "{shown}");
    }

    #[test]
    fn cluster_seeds_are_split_and_redacted() {
        let config = RedisConfig::cluster(["redis://a:1", "redis://u:pw@b:2"]);
        assert!(config.cluster);
        assert_eq!(config.urls(), vec!["redis://a:1", "redis://u:pw@b:2"]);
        let shown = format!("{config:?}");
        assert!(!shown.contains("pw"), "{shown}");
        assert!(config.validate().is_ok());
        let several = RedisConfig::new("redis://a:1,redis://b:2");
        assert_eq!(
            several
                .validate()
                .err()
                .and_then(|e| e.field().map(str::to_owned)),
            Some("redis.url".to_owned())
        );
        assert!(several.with_cluster(true).validate().is_ok());
    }

    #[test]
    fn validation_names_the_field() {
        let bad = RedisConfig::default().with_pool_size(0);
        assert_eq!(
            bad.validate()
                .err()
                .and_then(|e| e.field().map(str::to_owned)),
            Some("redis.pool_size".to_owned())
        );
        let bad = RedisConfig::default().with_key_prefix("a {b}");
        assert!(bad.validate().is_err());
        let bad = RedisConfig::default().with_command_timeout(Duration::ZERO);
        assert!(bad.validate().is_err());
        assert!(RedisConfig::default().validate().is_ok());
    }
}
