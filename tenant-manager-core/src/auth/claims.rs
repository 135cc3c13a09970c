//! The claims of an access token, and an issued token.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::{Role, Secret, TenantId, UserId};

/// The claims of a tenant-manager access token.
///
/// Times are Unix seconds. Every claim is required when a token is verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user.
    pub sub: UserId,
    /// The user's tenant.
    pub tid: TenantId,
    /// The user's role within the tenant.
    pub role: Role,
    /// A unique token id (UUID v4), for revocation lists and audit logs.
    pub jti: String,
    /// Issued at.
    pub iat: i64,
    /// Not valid before.
    pub nbf: i64,
    /// Expires at.
    pub exp: i64,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
}

/// A freshly issued access token. Its `Debug` hides the token.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IssuedToken {
    /// The signed JWT. Send it to its owner; never log it.
    pub access_token: Secret,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Time until the token expires.
    pub expires_in: Duration,
    /// What the token says.
    pub claims: Claims,
}

impl IssuedToken {
    /// A bearer token.
    pub fn new(access_token: Secret, expires_in: Duration, claims: Claims) -> Self {
        Self {
            access_token,
            token_type: "Bearer",
            expires_in,
            claims,
        }
    }
}
