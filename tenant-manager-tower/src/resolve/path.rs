//! [`PathResolver`]: a tenant segment in the request path.

use http::request::Parts;
use tenant_manager_core::{Error, Result};

use super::{Resolution, ResolveTenant, parse_reference};
use crate::context::ResolvedBy;

/// Reads the tenant (id or slug) from the path segment after a prefix: with prefix `/t`,
/// `/t/acme/projects` names `acme`. Paths outside the prefix name no tenant; the path is not
/// rewritten, so routes include the segment (`/t/{tenant}/projects`).
#[derive(Debug, Clone)]
pub struct PathResolver {
    prefix: String,
}

impl PathResolver {
    /// Reads the segment after `prefix` (such as `/t` or `/tenants`).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on field `path_prefix` unless the prefix starts with `/` and
    /// holds only letters, digits, `_`, `-` and `/`.
    pub fn new(prefix: &str) -> Result<Self> {
        let trimmed = prefix.trim_end_matches('/');
        let valid = prefix.starts_with('/')
            && prefix.len() <= 128
            && trimmed
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-/".contains(&b))
            && !trimmed.contains("//");
        if !valid {
            return Err(Error::invalid(
                "path_prefix",
                "must start with / and hold only letters, digits, _, - and /",
            ));
        }
        Ok(Self {
            prefix: trimmed.to_owned(),
        })
    }
}

impl ResolveTenant for PathResolver {
    fn resolve(&self, request: &Parts) -> Result<Option<Resolution>> {
        let Some(rest) = request
            .uri
            .path()
            .strip_prefix(self.prefix.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
        else {
            return Ok(None);
        };
        let segment = rest.split('/').next().unwrap_or_default();
        if segment.is_empty() {
            return Ok(None);
        }
        let key = parse_reference(segment, "tenant")?;
        Ok(Some(Resolution::new(key, ResolvedBy::Path)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;
    use tenant_manager_core::CacheKey;

    fn resolve(resolver: &PathResolver, path: &str) -> Result<Option<CacheKey>> {
        let parts = Request::get(path)
            .body(())
            .map(|r| r.into_parts().0)
            .map_err(|e| Error::internal_with("bad test uri", e))?;
        Ok(resolver.resolve(&parts)?.map(|r| r.key))
    }

    #[test]
    fn reads_the_segment_after_the_prefix() {
        let resolver = PathResolver::new("/t/").unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            resolve(&resolver, "/t/acme/projects?x=1"),
            Ok(Some(CacheKey::Slug(_)))
        ));
        assert!(matches!(
            resolve(&resolver, "/t/acme"),
            Ok(Some(CacheKey::Slug(_)))
        ));
        assert!(matches!(resolve(&resolver, "/t/"), Ok(None)));
        assert!(matches!(resolve(&resolver, "/tx/acme"), Ok(None)));
        assert!(matches!(resolve(&resolver, "/health"), Ok(None)));
        assert!(resolve(&resolver, "/t/%61cme").is_err());
        assert!(resolve(&resolver, "/t/ACME/x").is_err());
    }

    #[test]
    fn prefixes_are_validated() {
        for bad in ["", "t", "/t?x", "/t//x", "/a b"] {
            assert!(PathResolver::new(bad).is_err(), "{bad:?}");
        }
        assert!(PathResolver::new("/api/v1/tenants").is_ok());
    }
}
