//! [`JwtResolver`]: the `tid` claim of a verified bearer token.

use http::header::AUTHORIZATION;
use http::request::Parts;
use tenant_manager_core::auth::TokenService;
use tenant_manager_core::{CacheKey, Error, Result};

use super::{Resolution, ResolveTenant};
use crate::context::ResolvedBy;

/// Reads `Authorization: Bearer <token>`, verifies it with the [`TokenService`] (algorithm,
/// signature, expiry, issuer, audience), and names the token's tenant (`tid`), user (`sub`)
/// and role. The default resolver for end-user traffic.
///
/// No `Authorization` header names no tenant (the next resolver is asked); a header that is
/// not a bearer token, or a token that does not verify, is refused with `401`.
#[derive(Debug, Clone)]
pub struct JwtResolver {
    tokens: TokenService,
}

impl JwtResolver {
    /// Verifies tokens with `tokens`.
    pub fn new(tokens: TokenService) -> Self {
        Self { tokens }
    }
}

impl ResolveTenant for JwtResolver {
    fn resolve(&self, request: &Parts) -> Result<Option<Resolution>> {
        let Some(value) = request.headers.get(AUTHORIZATION) else {
            return Ok(None);
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or_else(|| Error::unauthenticated("expected a bearer token"))?;
        let claims = self.tokens.verify(token)?;
        Ok(Some(
            Resolution::new(CacheKey::Id(claims.tid), ResolvedBy::Jwt)
                .with_user(claims.sub, claims.role),
        ))
    }
}
