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
    /// The server URL with `REDIS_PASSWORD` applied (a secret: it may hold the password).
    pub url: Option<Secret>,
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
            return Ok(Self {
                url: None,
                key_prefix,
                rate_mode,
            });
        };
        let Some(mut parsed) = redis::parse_redis_url(url.expose()) else {
            return Err(ConfigError::new(
                "REDIS_URL",
                "must be a redis:// or rediss:// URL",
            ));
        };
        if let Some(password) = &vars.redis_password
            && parsed.password().is_none()
            && parsed.set_password(Some(password.expose())).is_err()
        {
            return Err(ConfigError::new(
                "REDIS_URL",
                "cannot carry a password (REDIS_PASSWORD)",
            ));
        }
        let url = Secret::new(parsed.to_string());
        if url.expose().into_connection_info().is_err() {
            return Err(ConfigError::new("REDIS_URL", "is not a usable Redis URL"));
        }
        Ok(Self {
            url: Some(url),
            key_prefix,
            rate_mode,
        })
    }

    /// `host:port` of the server, for logs.
    pub fn shown(&self) -> Option<String> {
        let parsed = redis::parse_redis_url(self.url.as_ref()?.expose())?;
        Some(format!(
            "{}://{}:{}",
            parsed.scheme(),
            parsed.host_str().unwrap_or(""),
            parsed.port().unwrap_or(6379)
        ))
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.shown())
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
            "RedisConfig { url: Some(\"redis://cache:6380\"), key_prefix: None, rate_mode: \
             Leased(RateLeaseConfig { max_cells: 64, limit_divisor: 100, ttl: 1s }) }"
        );
    }
}
