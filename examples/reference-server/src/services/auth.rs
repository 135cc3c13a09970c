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
/// (refused in production by the configuration).
///
/// # Errors
/// The hasher's own checks.
pub(crate) fn hasher(config: &Config) -> Result<PasswordHasher> {
    let params = if config.security.fast_password_hashing {
        HasherConfig::owasp().with_params(1024, 1, 1)
    } else {
        HasherConfig::owasp()
    };
    PasswordHasher::new(params)
}
