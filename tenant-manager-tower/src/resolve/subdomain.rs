//! [`SubdomainResolver`]: `acme.example.com` names the tenant `acme`.

use http::header::HOST;
use http::request::Parts;
use tenant_manager_core::{CacheKey, Result, TenantSlug, validate_domain};

use super::{Resolution, ResolveTenant};
use crate::context::ResolvedBy;

/// Reads the tenant slug from the first label of the host under a base domain: with base
/// `example.com`, `acme.example.com` names `acme`. The host comes from the request URI
/// (HTTP/2 `:authority`) or the `Host` header; the port is ignored.
///
/// The apex, deeper names (`a.b.example.com`) and labels that are not valid slugs (reserved
/// names such as `www` or `api` included) name no tenant. With
/// [`with_custom_domains`](Self::with_custom_domains), hosts outside the base domain are looked
/// up as tenants' custom domains.
#[derive(Debug, Clone)]
pub struct SubdomainResolver {
    base: String,
    custom_domains: bool,
}

impl SubdomainResolver {
    /// Resolves subdomains of `base_domain` (such as `example.com`).
    ///
    /// # Errors
    /// [`Error::InvalidInput`](tenant_manager_core::Error::InvalidInput) on field `domain` when
    /// `base_domain` is not a valid host name.
    pub fn new(base_domain: &str) -> Result<Self> {
        validate_domain(base_domain)?;
        Ok(Self {
            base: base_domain.to_ascii_lowercase(),
            custom_domains: false,
        })
    }

    /// Also resolves hosts outside the base domain as tenants' custom domains.
    #[must_use]
    pub fn with_custom_domains(mut self) -> Self {
        self.custom_domains = true;
        self
    }

    fn key_for(&self, host: &str) -> Option<CacheKey> {
        let host = host.trim_end_matches('.');
        // Byte-wise, so no slicing can split a character whatever the host holds.
        let label_len = host.len().checked_sub(self.base.len() + 1);
        if let Some(label_len) = label_len.filter(|len| *len > 0) {
            let bytes = host.as_bytes();
            if bytes[label_len] == b'.'
                && bytes[label_len + 1..].eq_ignore_ascii_case(self.base.as_bytes())
            {
                let label = host.get(..label_len)?;
                if label.contains('.') {
                    return None;
                }
                return TenantSlug::new(label.to_ascii_lowercase())
                    .ok()
                    .map(CacheKey::Slug);
            }
        }
        if self.custom_domains
            && !host.eq_ignore_ascii_case(&self.base)
            && validate_domain(host).is_ok()
        {
            return Some(CacheKey::Domain(host.to_ascii_lowercase()));
        }
        None
    }
}

/// The host of a request without its port.
fn host_of(request: &Parts) -> Option<&str> {
    if let Some(host) = request.uri.host() {
        return Some(host);
    }
    let value = request.headers.get(HOST)?.to_str().ok()?;
    // A bracketed IPv6 literal is never a tenant host; strip the port of anything else.
    Some(value.rsplit_once(':').map_or(value, |(host, _port)| host))
}

impl ResolveTenant for SubdomainResolver {
    fn resolve(&self, request: &Parts) -> Result<Option<Resolution>> {
        Ok(host_of(request)
            .and_then(|host| self.key_for(host))
            .map(|key| Resolution::new(key, ResolvedBy::Subdomain)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn key(resolver: &SubdomainResolver, host: &str) -> Option<CacheKey> {
        let parts = Request::get("/")
            .header(HOST, host)
            .body(())
            .map(|r| r.into_parts().0)
            .ok()?;
        resolver.resolve(&parts).ok().flatten().map(|r| r.key)
    }

    #[test]
    fn reads_one_label_under_the_base() {
        let resolver = SubdomainResolver::new("example.com").unwrap_or_else(|e| panic!("{e}"));
        let slug = |s: &str| TenantSlug::new(s).ok().map(CacheKey::Slug);
        assert_eq!(key(&resolver, "acme.example.com"), slug("acme"));
        assert_eq!(key(&resolver, "ACME.Example.COM:8443"), slug("acme"));
        assert_eq!(key(&resolver, "acme.example.com."), slug("acme"));
        for none in [
            "example.com",
            "www.example.com",
            "api.example.com",
            "a.b.example.com",
            "badexample.com",
            "acme.example.org",
            "bad-name.example.com",
            "[::1]:80",
            "127.0.0.1",
        ] {
            assert_eq!(key(&resolver, none), None, "{none}");
        }
    }

    #[test]
    fn custom_domains_when_enabled() {
        let resolver = SubdomainResolver::new("example.com")
            .unwrap_or_else(|e| panic!("{e}"))
            .with_custom_domains();
        assert_eq!(
            key(&resolver, "App.Acme.io"),
            Some(CacheKey::Domain("app.acme.io".into()))
        );
        assert_eq!(key(&resolver, "example.com"), None);
        assert_eq!(key(&resolver, "localhost"), None);
        assert!(SubdomainResolver::new("not a domain").is_err());
    }
}
