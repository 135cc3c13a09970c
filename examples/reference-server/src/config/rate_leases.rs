//! How rate limits are checked in Redis: budgets leased by each instance (the default) or one
//! script per check.

use std::time::Duration;

use tenant_manager::redis::RateLeaseConfig;

use super::env::EnvVars;
use crate::startup_error::ConfigError;

/// How the Redis quota enforcer checks rate limits (`RATE_LIMIT_LEASES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedisRateMode {
    /// Each instance leases a slice of a key's budget in one script call and admits from it in
    /// process (`RATE_LIMIT_LEASES=true`, the default). Over any span of time, at most
    /// `instances × lease` more requests than one script per check would admit (see
    /// `RateLeaseConfig`); exactly the limit in a fresh window.
    Leased(RateLeaseConfig),
    /// One Lua script per check (`RATE_LIMIT_LEASES=false`): exact, and one round trip and
    /// about 20 µs of Redis CPU per request.
    PerRequest,
}

impl Default for RedisRateMode {
    fn default() -> Self {
        RedisRateMode::Leased(RateLeaseConfig::default())
    }
}

impl RedisRateMode {
    /// The validation pass of `RATE_LIMIT_LEASES` and the `RATE_LIMIT_LEASE_*` settings,
    /// checked even when Redis is unused (a warning then says they have no effect).
    pub(super) fn from_vars(
        vars: &EnvVars,
        warnings: &mut Vec<String>,
    ) -> Result<Self, ConfigError> {
        let lease_vars_set = vars.rate_limit_lease_max_cells.is_some()
            || vars.rate_limit_lease_limit_divisor.is_some()
            || vars.rate_limit_lease_ttl_ms.is_some();
        if lease_vars_set && vars.redis_url.is_none() {
            warnings.push(
                "RATE_LIMIT_LEASE_* is set but REDIS_URL is not: rate limits are checked in \
                 process, exactly"
                    .to_owned(),
            );
        } else if lease_vars_set && !vars.rate_limit_leases {
            warnings.push(
                "RATE_LIMIT_LEASE_* is set but RATE_LIMIT_LEASES is false: one script per check"
                    .to_owned(),
            );
        }
        if !vars.rate_limit_leases {
            return Ok(RedisRateMode::PerRequest);
        }
        let mut config = RateLeaseConfig::default();
        if let Some(cells) = vars.rate_limit_lease_max_cells {
            config = config.with_max_cells(cells);
        }
        if let Some(divisor) = vars.rate_limit_lease_limit_divisor {
            config = config.with_limit_divisor(divisor);
        }
        if let Some(ttl_ms) = vars.rate_limit_lease_ttl_ms {
            config = config.with_ttl(Duration::from_millis(ttl_ms));
        }
        // The parsers' ranges are the library's; a mismatch would be a bug caught here.
        config
            .validate()
            .map_err(|e| ConfigError::new("RATE_LIMIT_LEASES", e.to_string()))?;
        Ok(RedisRateMode::Leased(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn load(
        pairs: &'static [(&'static str, &'static str)],
    ) -> (Result<RedisRateMode, ConfigError>, Vec<String>) {
        let loaded = Config::from_lookup(move |name: &str| {
            let redis = ("REDIS_URL", "redis://127.0.0.1:6379");
            pairs
                .iter()
                .chain([&redis])
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        });
        match loaded {
            Ok(config) => (Ok(config.redis.rate_mode), config.warnings),
            Err(e) => (Err(e), Vec::new()),
        }
    }

    #[test]
    fn leases_are_the_default_and_take_their_settings() {
        assert_eq!(load(&[]).0, Ok(RedisRateMode::default()));
        let (mode, warnings) = load(&[
            ("RATE_LIMIT_LEASE_MAX_CELLS", "16"),
            ("RATE_LIMIT_LEASE_LIMIT_DIVISOR", "50"),
            ("RATE_LIMIT_LEASE_TTL_MS", "250"),
        ]);
        let expected = RateLeaseConfig::default()
            .with_max_cells(16)
            .with_limit_divisor(50)
            .with_ttl(Duration::from_millis(250));
        assert_eq!(mode, Ok(RedisRateMode::Leased(expected)));
        assert!(warnings.is_empty());
        let (mode, warnings) = load(&[
            ("RATE_LIMIT_LEASES", "false"),
            ("RATE_LIMIT_LEASE_TTL_MS", "250"),
        ]);
        assert_eq!(mode, Ok(RedisRateMode::PerRequest));
        assert_eq!(warnings.len(), 1, "settings without effect are pointed out");
    }

    #[test]
    fn bad_settings_name_their_variable() {
        for (pairs, variable) in [
            (
                &[("RATE_LIMIT_LEASES", "sometimes")][..],
                "RATE_LIMIT_LEASES",
            ),
            (
                &[("RATE_LIMIT_LEASE_MAX_CELLS", "0")][..],
                "RATE_LIMIT_LEASE_MAX_CELLS",
            ),
            (
                &[("RATE_LIMIT_LEASE_LIMIT_DIVISOR", "1")][..],
                "RATE_LIMIT_LEASE_LIMIT_DIVISOR",
            ),
            (
                &[("RATE_LIMIT_LEASE_TTL_MS", "60001")][..],
                "RATE_LIMIT_LEASE_TTL_MS",
            ),
        ] {
            let Err(err) = load(pairs).0 else {
                panic!("{variable}: a bad value was accepted");
            };
            assert_eq!(err.variable, variable, "{err}");
        }
    }
}
