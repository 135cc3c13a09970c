//! [`HeaderResolver`]: a tenant header set by a trusted internal hop.

use http::HeaderName;
use http::request::Parts;
use tenant_manager_core::{Error, Result};

use super::{Resolution, ResolveTenant, parse_reference};
use crate::context::ResolvedBy;

/// Reads the tenant from a header such as `X-Tenant-Id` (a tenant id or slug).
///
/// Anyone can send a header: use it only for traffic from trusted internal hops (a gateway
/// that authenticated the caller and strips the header from outside requests). It is never a
/// default. Placed after a [`JwtResolver`](super::JwtResolver), a header naming another tenant
/// than the token is refused.
#[derive(Debug, Clone)]
pub struct HeaderResolver {
    name: HeaderName,
    field: &'static str,
}

impl HeaderResolver {
    /// Reads `X-Tenant-Id`.
    pub fn x_tenant_id() -> Self {
        Self {
            name: HeaderName::from_static("x-tenant-id"),
            field: "x-tenant-id",
        }
    }

    /// Reads the header `name`; `field` names it in error bodies.
    pub fn new(name: HeaderName, field: &'static str) -> Self {
        Self { name, field }
    }
}

impl ResolveTenant for HeaderResolver {
    fn resolve(&self, request: &Parts) -> Result<Option<Resolution>> {
        let mut values = request.headers.get_all(&self.name).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(Error::invalid(self.field, "must appear once"));
        }
        let value = value
            .to_str()
            .map_err(|_| Error::invalid(self.field, "must be a tenant id or slug"))?;
        let key = parse_reference(value.trim(), self.field)?;
        Ok(Some(Resolution::new(key, ResolvedBy::Header)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;
    use tenant_manager_core::{CacheKey, TenantId};

    fn parts(values: &[&str]) -> Parts {
        let mut builder = Request::builder();
        for value in values {
            builder = builder.header("x-tenant-id", *value);
        }
        builder
            .body(())
            .map(|r| r.into_parts().0)
            .unwrap_or_else(|_| Request::new(()).into_parts().0)
    }

    #[test]
    fn reads_ids_and_slugs_and_refuses_garbage() {
        let resolver = HeaderResolver::x_tenant_id();
        assert_eq!(resolver.resolve(&parts(&[])).ok(), Some(None));
        let id = TenantId::new();
        let found = resolver.resolve(&parts(&[&id.to_string()])).ok().flatten();
        assert_eq!(found.map(|r| r.key), Some(CacheKey::Id(id)));
        let found = resolver.resolve(&parts(&["acme"])).ok().flatten();
        assert!(matches!(found.map(|r| r.key), Some(CacheKey::Slug(_))));
        for bad in [&["ACME"][..], &["acme", "other"], &["../etc"]] {
            let error = resolver.resolve(&parts(bad)).err();
            assert_eq!(
                error.as_ref().and_then(|e| e.field()),
                Some("x-tenant-id"),
                "{bad:?}"
            );
        }
    }
}
