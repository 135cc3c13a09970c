//! Token service and password hasher from the configuration.

use tenant_manager::Result;
use tenant_manager::auth::{HasherConfig, JwtConfig, PasswordHasher, TokenService};

use crate::config::Config;

/// The HS256 token service keyed by `JWT_SECRET`, with `ACCESS_TOKEN_TTL_SECONDS`.
///
/// # Errors
/// The token service's own checks (secret length, TTL).
pub(crate) fn tokens(config: &Config) -> Result<TokenService> {
    let jwt = JwtConfig::hs256(config.security.jwt_secret.clone())
        .with_ttl(config.security.access_token_ttl);
    let tokens = TokenService::new(jwt)?;
    tokens.self_test()?;
    Ok(tokens)
}

/// The argon2id hasher: OWASP parameters, or cheap ones with `PASSWORD_HASHING=fast`
/// (refused in production by the configuration), on `PASSWORD_HASH_THREADS` threads that
/// shed after `PASSWORD_HASH_QUEUE_MS`.
///
/// # Errors
/// The hasher's own checks.
pub(crate) fn hasher(config: &Config) -> Result<PasswordHasher> {
    let security = &config.security;
    let mut params = HasherConfig::owasp().with_queue_wait(security.password_hash_queue_wait);
    if security.fast_password_hashing {
        params = params.with_params(1024, 1, 1);
    }
    if let Some(threads) = security.password_hash_threads {
        params = params.with_max_concurrent(threads);
    }
    PasswordHasher::new(params)
}
