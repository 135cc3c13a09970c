//! `JWT_SECRET` and `SUPER_ADMIN_KEY`: required in production, generated in development.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use tenant_manager::{RateLimit, Secret};

use super::app_env::AppEnv;
use super::env::EnvVars;
use crate::startup_error::ConfigError;

/// Shortest accepted secret, in bytes (`openssl rand -base64 32` prints 44).
pub const MIN_SECRET_LEN: usize = 32;

/// Secrets and token settings.
#[derive(Clone)]
#[non_exhaustive]
pub struct SecurityConfig {
    /// HS256 key of access tokens (`JWT_SECRET`).
    pub jwt_secret: Secret,
    /// Key of the admin API, sent in `X-Admin-Key` (`SUPER_ADMIN_KEY`).
    pub super_admin_key: Secret,
    /// Whether `JWT_SECRET` was generated for this run (tokens die with the process).
    pub jwt_secret_generated: bool,
    /// Whether `SUPER_ADMIN_KEY` was generated for this run (printed once at start-up).
    pub admin_key_generated: bool,
    /// Lifetime of access tokens (`ACCESS_TOKEN_TTL_SECONDS`, default 3600).
    pub access_token_ttl: Duration,
    /// Lifetime of refresh tokens (`REFRESH_TOKEN_TTL_SECONDS`, default 30 days); each
    /// rotation starts a new one.
    pub refresh_token_ttl: Duration,
    /// How long an invitation can be accepted (`INVITATION_TTL_SECONDS`, default 7 days).
    pub invitation_ttl: Duration,
    /// How often expired refresh tokens are deleted (`REFRESH_TOKEN_PRUNE_INTERVAL_MS`,
    /// default 1 hour; `None` for 0, off).
    pub refresh_token_prune_interval: Option<Duration>,
    /// Cheap password hashing for test runs (`PASSWORD_HASHING=fast`; refused in
    /// production). The default, `owasp`, uses OWASP's argon2id parameters.
    pub fast_password_hashing: bool,
    /// Dedicated password hashing threads (`PASSWORD_HASH_THREADS`, 1 to 1024; default and
    /// cap: half the CPUs, at least 1).
    pub password_hash_threads: Option<usize>,
    /// How long a login or registration waits for a free hashing thread before it is answered
    /// `503` with `Retry-After` (`PASSWORD_HASH_QUEUE_MS`, 0 to 60000, default 1000).
    pub password_hash_queue_wait: Duration,
    /// Failed logins allowed per e-mail address and window (`LOGIN_MAX_FAILURES`, default 10,
    /// 0 turns the limit off; `LOGIN_FAILURE_WINDOW_MS`, default 900000).
    pub login_failures: Option<RateLimit>,
}

impl Default for SecurityConfig {
    /// Freshly generated secrets, as in development mode.
    fn default() -> Self {
        Self {
            jwt_secret: generate_secret(),
            super_admin_key: generate_secret(),
            jwt_secret_generated: true,
            admin_key_generated: true,
            access_token_ttl: Duration::from_secs(3600),
            refresh_token_ttl: Duration::from_secs(30 * 86_400),
            invitation_ttl: Duration::from_secs(7 * 86_400),
            refresh_token_prune_interval: Some(Duration::from_secs(3600)),
            fast_password_hashing: false,
            password_hash_threads: None,
            password_hash_queue_wait: Duration::from_secs(1),
            login_failures: Some(RateLimit {
                limit: 10,
                window_ms: 900_000,
            }),
        }
    }
}

impl SecurityConfig {
    /// Sets the token key.
    #[must_use]
    pub fn with_jwt_secret(mut self, secret: Secret) -> Self {
        self.jwt_secret = secret;
        self.jwt_secret_generated = false;
        self
    }

    /// Sets the admin key.
    #[must_use]
    pub fn with_super_admin_key(mut self, key: Secret) -> Self {
        self.super_admin_key = key;
        self.admin_key_generated = false;
        self
    }

    /// Sets the access token lifetime.
    #[must_use]
    pub fn with_access_token_ttl(mut self, ttl: Duration) -> Self {
        self.access_token_ttl = ttl;
        self
    }

    /// The validation pass of the secrets and login settings.
    pub(super) fn from_vars(vars: &EnvVars, env: AppEnv) -> Result<Self, ConfigError> {
        let (jwt_secret, jwt_secret_generated) =
            resolve(vars.jwt_secret.as_ref(), "JWT_SECRET", env)?;
        let (super_admin_key, admin_key_generated) =
            resolve(vars.super_admin_key.as_ref(), "SUPER_ADMIN_KEY", env)?;
        if env.is_production() && jwt_secret.ct_eq(super_admin_key.expose().as_bytes()) {
            return Err(ConfigError::new(
                "SUPER_ADMIN_KEY",
                "must differ from JWT_SECRET",
            ));
        }
        if vars.password_hashing_fast && env.is_production() {
            return Err(ConfigError::new(
                "PASSWORD_HASHING",
                "fast hashing is for tests and refused in production",
            ));
        }
        Ok(Self {
            password_hash_threads: (vars.password_hash_threads > 0)
                .then_some(vars.password_hash_threads),
            password_hash_queue_wait: Duration::from_millis(vars.password_hash_queue_ms),
            login_failures: (vars.login_max_failures > 0).then_some(RateLimit {
                limit: vars.login_max_failures,
                window_ms: vars.login_failure_window_ms,
            }),
            jwt_secret,
            super_admin_key,
            jwt_secret_generated,
            admin_key_generated,
            access_token_ttl: Duration::from_secs(vars.access_token_ttl_seconds),
            refresh_token_ttl: Duration::from_secs(vars.refresh_token_ttl_seconds),
            invitation_ttl: Duration::from_secs(vars.invitation_ttl_seconds),
            refresh_token_prune_interval: (vars.refresh_token_prune_interval_ms > 0)
                .then(|| Duration::from_millis(vars.refresh_token_prune_interval_ms)),
            fast_password_hashing: vars.password_hashing_fast,
        })
    }
}

impl fmt::Debug for SecurityConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecurityConfig")
            .field("jwt_secret", &self.jwt_secret)
            .field("super_admin_key", &self.super_admin_key)
            .field("jwt_secret_generated", &self.jwt_secret_generated)
            .field("admin_key_generated", &self.admin_key_generated)
            .field("access_token_ttl", &self.access_token_ttl)
            .field("refresh_token_ttl", &self.refresh_token_ttl)
            .field("invitation_ttl", &self.invitation_ttl)
            .field(
                "refresh_token_prune_interval",
                &self.refresh_token_prune_interval,
            )
            .field("fast_password_hashing", &self.fast_password_hashing)
            .field("password_hash_threads", &self.password_hash_threads)
            .field("password_hash_queue_wait", &self.password_hash_queue_wait)
            .field("login_failures", &self.login_failures)
            .finish()
    }
}

/// A random secret: 32 bytes from the OS generator, base64url without padding (43 characters).
pub fn generate_secret() -> Secret {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    Secret::new(URL_SAFE_NO_PAD.encode(bytes))
}

/// The secret of `name` (at least [`MIN_SECRET_LEN`] bytes), or in development a generated
/// one when it is unset. Returns whether it was generated.
fn resolve(
    secret: Option<&Secret>,
    name: &'static str,
    env: AppEnv,
) -> Result<(Secret, bool), ConfigError> {
    match secret {
        Some(secret) if secret.len() >= MIN_SECRET_LEN => Ok((secret.clone(), false)),
        Some(_) => Err(ConfigError::new(
            name,
            format!(
                "must be at least {MIN_SECRET_LEN} bytes (generate one with \
                 `openssl rand -base64 32`)"
            ),
        )),
        None if env.is_production() => Err(ConfigError::new(
            name,
            "is required in production (generate one with `openssl rand -base64 32`)",
        )),
        None => Ok((generate_secret(), true)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn load(env: AppEnv, pairs: &[(&'static str, String)]) -> Result<SecurityConfig, ConfigError> {
        let mut pairs = pairs.to_vec();
        pairs.push(("APP_ENV", env.as_str().to_owned()));
        Config::from_lookup(move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        })
        .map(|config| config.security)
    }

    #[test]
    fn production_refuses_missing_or_short_secrets() {
        let long = "k".repeat(40);
        let err = load(AppEnv::Production, &[("SUPER_ADMIN_KEY", long.clone())]).err();
        assert_eq!(err.map(|e| e.variable), Some("JWT_SECRET"));
        let err = load(
            AppEnv::Production,
            &[
                ("JWT_SECRET", long.clone()),
                ("SUPER_ADMIN_KEY", "short".into()),
            ],
        )
        .err();
        assert_eq!(err.as_ref().map(|e| e.variable), Some("SUPER_ADMIN_KEY"));
        assert!(err.is_some_and(|e| !e.reason.contains("short")));
        let err = load(
            AppEnv::Production,
            &[("JWT_SECRET", long.clone()), ("SUPER_ADMIN_KEY", long)],
        )
        .err();
        assert_eq!(err.map(|e| e.variable), Some("SUPER_ADMIN_KEY"));
    }

    #[test]
    fn short_secrets_are_refused_everywhere() {
        let err = load(AppEnv::Development, &[("JWT_SECRET", "short".into())]).err();
        assert_eq!(err.map(|e| e.variable), Some("JWT_SECRET"));
    }

    #[test]
    fn development_generates_what_is_missing() {
        let cfg = load(AppEnv::Development, &[("JWT_SECRET", "j".repeat(32))]);
        let cfg = cfg.unwrap_or_else(|e| panic!("{e}"));
        assert!(!cfg.jwt_secret_generated);
        assert!(cfg.admin_key_generated);
        assert_eq!(cfg.super_admin_key.len(), 43);
        assert_ne!(generate_secret().expose(), generate_secret().expose());
    }

    #[test]
    fn login_protection_variables() {
        let cfg = load(AppEnv::Development, &[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.password_hash_threads, None);
        assert_eq!(cfg.password_hash_queue_wait, Duration::from_secs(1));
        assert_eq!(
            cfg.login_failures.map(|r| (r.limit, r.window_ms)),
            Some((10, 900_000))
        );
        let cfg = load(
            AppEnv::Development,
            &[
                ("PASSWORD_HASH_THREADS", "1".into()),
                ("PASSWORD_HASH_QUEUE_MS", "250".into()),
                ("LOGIN_MAX_FAILURES", "0".into()),
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.password_hash_threads, Some(1));
        assert_eq!(cfg.password_hash_queue_wait, Duration::from_millis(250));
        assert_eq!(cfg.login_failures, None);
        for (name, value) in [
            ("PASSWORD_HASH_THREADS", "2000"),
            ("PASSWORD_HASH_QUEUE_MS", "61000"),
            ("LOGIN_MAX_FAILURES", "-1"),
            ("LOGIN_FAILURE_WINDOW_MS", "10"),
        ] {
            let err = load(AppEnv::Development, &[(name, value.into())]).err();
            assert_eq!(err.map(|e| e.variable), Some(name));
        }
    }

    #[test]
    fn debug_never_prints_secrets() {
        let cfg = SecurityConfig::default()
            .with_jwt_secret(Secret::new("super-secret-value-1234567890123"));
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("super-secret"));
        assert!(!shown.contains(cfg.super_admin_key.expose()));
    }
}
