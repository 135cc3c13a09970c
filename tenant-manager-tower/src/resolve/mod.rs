//! `ResolveTenant`: which tenant a request names, and the ready-made resolvers.
//!
//! A resolver only reads the request head and says which tenant it names (by id, slug or
//! domain) and, for tokens, which user; it does no I/O. The [`TenantLayer`](crate::TenantLayer)
//! then looks the tenant up once (cache first) and checks its status.

mod header;
mod jwt;
mod path;
mod subdomain;

use http::request::Parts;
use tenant_manager_core::{CacheKey, Result, TenantId, TenantSlug};

pub use crate::context::Resolution;

pub use header::HeaderResolver;
pub use jwt::JwtResolver;
pub use path::PathResolver;
pub use subdomain::SubdomainResolver;

/// Finds the tenant a request names.
///
/// Implemented by the ready-made resolvers and by every closure
/// `Fn(&http::request::Parts) -> Result<Option<Resolution>>`.
///
/// # Contract
/// - `Ok(None)`: the request carries nothing this resolver reads (no token, no such header);
///   the next resolver is asked.
/// - `Ok(Some(_))`: the request names this tenant. A resolution with a user must come from a
///   verified credential.
/// - Pure and fast: no I/O, no lock held; it runs on every request.
///
/// # Errors
/// The request carries what this resolver reads but it is unacceptable (a token that does not
/// verify, a malformed header): the request is refused with the error's status.
pub trait ResolveTenant: Send + Sync + 'static {
    /// The tenant `request` names, if this resolver finds one.
    fn resolve(&self, request: &Parts) -> Result<Option<Resolution>>;
}

impl<F> ResolveTenant for F
where
    F: Fn(&Parts) -> Result<Option<Resolution>> + Send + Sync + 'static,
{
    fn resolve(&self, request: &Parts) -> Result<Option<Resolution>> {
        self(request)
    }
}

/// Parses a tenant reference: a UUID is an id, anything else must be a valid slug.
fn parse_reference(value: &str, field: &'static str) -> Result<CacheKey> {
    if let Ok(id) = TenantId::parse_field(value, field) {
        return Ok(CacheKey::Id(id));
    }
    TenantSlug::parse_field(value, field).map(CacheKey::Slug)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_ids_or_valid_slugs() {
        let id = TenantId::new();
        assert_eq!(
            parse_reference(&id.to_string(), "tenant").ok(),
            Some(CacheKey::Id(id))
        );
        assert!(matches!(
            parse_reference("acme", "tenant"),
            Ok(CacheKey::Slug(_))
        ));
        for bad in ["", "Acme", "a b", "x'; drop", "pg_x", "admin"] {
            let field = parse_reference(bad, "tenant")
                .err()
                .and_then(|e| e.field().map(str::to_owned));
            assert_eq!(field.as_deref(), Some("tenant"), "{bad:?}");
        }
    }
}
