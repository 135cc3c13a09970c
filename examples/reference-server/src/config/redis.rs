//! Redis: with `REDIS_URL`, quotas, the tenant cache and the job queue live in Redis.

use std::fmt;

use tenant_manager::Secret;
use tenant_manager::redis::redis::{self, IntoConnectionInfo as _};

use super::env::EnvVars;
use super::rate_leases::RedisRateMode;
use crate::startup_error::ConfigError;

/// Redis settings. With `REDIS_URL`, quotas, the tenant cache and the job queue live in Redis.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct RedisConfig {
    /// The server URL with `REDIS_PASSWORD` applied (a secret: it may hold the password); with
    /// `cluster`, the seed nodes' URLs, comma-separated, each with the password applied.
    pub url: Option<Secret>,
    /// Whether Redis is a Redis Cluster (`REDIS_CLUSTER`): `REDIS_URL` lists seed nodes.
    pub cluster: bool,
    /// Prefix of every key and channel (`REDIS_KEY_PREFIX`), so deployments can share a
    /// Redis; the adapters' default when unset.
    pub key_prefix: Option<String>,
    /// How rate limits are checked in Redis (`RATE_LIMIT_LEASES`, `RATE_LIMIT_LEASE_*`).
    pub rate_mode: RedisRateMode,
}

impl RedisConfig {
    /// Uses this Redis URL.
    #[must_use]
    pub fn with_url(mut self, url: Secret) -> Self {
        self.url = Some(url);
        self
    }

    /// The validation pass of the Redis variables: `REDIS_PASSWORD` applied to `REDIS_URL`.
    pub(super) fn from_vars(
        vars: &EnvVars,
        warnings: &mut Vec<String>,
    ) -> Result<Self, ConfigError> {
        let key_prefix = vars.redis_key_prefix.clone();
        let rate_mode = RedisRateMode::from_vars(vars, warnings)?;
        let Some(url) = &vars.redis_url else {
            if vars.redis_password.is_some() {
                warnings.push("REDIS_PASSWORD is set but REDIS_URL is not: Redis unused".into());
            }
            if vars.redis_cluster {
                warnings.push("REDIS_CLUSTER is set but REDIS_URL is not: Redis unused".into());
            }
            return Ok(Self {
                url: None,
                cluster: false,
                key_prefix,
                rate_mode,
            });
        };
        let urls: Vec<&str> = if vars.redis_cluster {
            url.expose().split(',').map(str::trim).collect()
        } else {
            vec![url.expose()]
        };
        let mut seeds = Vec::with_capacity(urls.len());
        for url in urls {
            seeds.push(with_password(url, vars.redis_password.as_ref())?);
        }
        Ok(Self {
            url: Some(Secret::new(seeds.join(","))),
            cluster: vars.redis_cluster,
            key_prefix,
            rate_mode,
        })
    }

    /// `scheme://host:port` of the server (of each seed node of a cluster), for logs.
    pub fn shown(&self) -> Option<String> {
        let shown: Option<Vec<String>> = self
            .url
            .as_ref()?
            .expose()
            .split(',')
            .map(|url| {
                let parsed = redis::parse_redis_url(url)?;
                Some(format!(
                    "{}://{}:{}",
                    parsed.scheme(),
                    parsed.host_str().unwrap_or(""),
                    parsed.port().unwrap_or(6379)
                ))
            })
            .collect();
        shown.map(|urls| urls.join(","))
    }
}

/// `url` checked, with `password` applied when it carries none.
fn with_password(url: &str, password: Option<&Secret>) -> Result<String, ConfigError> {
    let Some(mut parsed) = redis::parse_redis_url(url) else {
        return Err(ConfigError::new(
            "REDIS_URL",
            "must be a redis:// or rediss:// URL (with REDIS_CLUSTER, a comma-separated list)",
        ));
    };
    if let Some(password) = password
        && parsed.password().is_none()
        && parsed.set_password(Some(password.expose())).is_err()
    {
        return Err(ConfigError::new(
            "REDIS_URL",
            "cannot carry a password (REDIS_PASSWORD)",
        ));
    }
    let url = parsed.to_string();
    if url.as_str().into_connection_info().is_err() {
        return Err(ConfigError::new("REDIS_URL", "is not a usable Redis URL"));
    }
    Ok(url)
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.shown())
            .field("cluster", &self.cluster)
            .field("key_prefix", &self.key_prefix)
            .field("rate_mode", &self.rate_mode)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn load(pairs: Vec<(&'static str, &'static str)>) -> Result<RedisConfig, ConfigError> {
        Config::from_lookup(move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
        .map(|config| config.redis)
    }

    #[test]
    fn bad_urls_name_their_variable() {
        let err = load(vec![("REDIS_URL", "http://x")]).err();
        assert_eq!(err.map(|e| e.variable), Some("REDIS_URL"));
    }

    #[test]
    fn a_cluster_takes_seed_urls_each_with_the_password() {
        let redis = load(vec![
            ("REDIS_URL", "redis://a:7000, redis://b:7001"),
            ("REDIS_PASSWORD", "s3cret"),
            ("REDIS_CLUSTER", "true"),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(redis.cluster);
        let url = redis.url.as_ref().map(|u| u.expose().to_owned());
        assert_eq!(
            url.as_deref(),
            Some("redis://:s3cret@a:7000,redis://:s3cret@b:7001")
        );
        assert_eq!(
            redis.shown().as_deref(),
            Some("redis://a:7000,redis://b:7001")
        );
        assert!(!format!("{redis:?}").contains("s3cret"));
        let err = load(vec![("REDIS_URL", "redis://a:7000,redis://b:7001")]).err();
        assert_eq!(
            err.map(|e| e.variable),
            Some("REDIS_URL"),
            "several URLs need REDIS_CLUSTER"
        );
    }

    #[test]
    fn redis_password_is_applied_and_hidden() {
        let redis = load(vec![
            ("REDIS_URL", "redis://cache:6380/2"),
            ("REDIS_PASSWORD", "p@ss"),
        ]);
        let redis = redis.unwrap_or_else(|e| panic!("{e}"));
        let url = redis
            .url
            .as_ref()
            .map(|u| u.expose().to_owned())
            .unwrap_or_default();
        assert!(url.contains("p%40ss@cache:6380"), "{url}");
        assert_eq!(
            format!("{redis:?}"),
            "RedisConfig { url: Some(\"redis://cache:6380\"), cluster: false, key_prefix: None, rate_mode: \
             Leased(RateLeaseConfig { max_cells: 64, limit_divisor: 100, ttl: 1s }) }"
        );
    }
}
