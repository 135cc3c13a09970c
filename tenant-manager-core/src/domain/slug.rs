//! `TenantSlug`: the short name that ends up in database, role and schema names.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Words that may not be used as a slug: Postgres internals, names the product uses itself,
/// and the words of a deployment's own storage objects (`<prefix>_shared`, `<prefix>_app`,
/// ...), so that no slug names a tenant object like one of them, also under the `tenant_<slug>`
/// names of tenants created before storage prefixes (`tenant_shared` was the default shared
/// database).
pub const RESERVED_SLUGS: &[&str] = &[
    "admin",
    "api",
    "app",
    "global",
    "information_schema",
    "owner",
    "pg_catalog",
    "pg_toast",
    "postgres",
    "public",
    "registry",
    "root",
    "shared",
    "shared_owner",
    "superuser",
    "system",
    "template",
    "template0",
    "template1",
    "template_owner",
    "tenant",
    "tenants",
    "www",
];

/// A validated tenant slug: 3 to 48 characters of lowercase ASCII letters, digits and `_`,
/// starting with a letter, not reserved, not starting with `pg_`.
///
/// Valid slugs are safe inside quoted SQL identifiers, yet every use still quotes them.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct TenantSlug(String);

impl TenantSlug {
    /// Shortest slug.
    pub const MIN_LEN: usize = 3;
    /// Longest slug (leaves room for prefixes within Postgres' 63-byte identifiers).
    pub const MAX_LEN: usize = 48;

    /// Validates a slug.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on field `slug` saying which rule failed.
    pub fn new(value: impl AsRef<str>) -> Result<Self, Error> {
        Self::parse_field(value.as_ref(), "slug")
    }

    /// Validates a slug, reporting `field` on failure.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `field` saying which rule failed.
    pub fn parse_field(value: &str, field: &'static str) -> Result<Self, Error> {
        let len = value.len();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&len) {
            return Err(Error::invalid(field, "must be 3 to 48 characters"));
        }
        if !value.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(Error::invalid(field, "must start with a lowercase letter"));
        }
        if !value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(Error::invalid(
                field,
                "may contain only lowercase letters, digits and _",
            ));
        }
        if value.starts_with("pg_") || RESERVED_SLUGS.contains(&value) {
            return Err(Error::invalid(field, "is reserved"));
        }
        Ok(Self(value.to_owned()))
    }

    /// Derives a slug from a display name: lowercased, other characters folded to `_`,
    /// prefixed with `t_` when it would not start with a letter, and a numeric suffix
    /// appended when it is reserved or too short.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `organization_name` when no valid slug can be derived.
    pub fn from_name(name: &str) -> Result<Self, Error> {
        let mut out = String::with_capacity(name.len());
        for c in name.chars() {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                out.push(c);
            } else if !out.ends_with('_') && !out.is_empty() {
                out.push('_');
            }
        }
        let mut out = out.trim_end_matches('_').to_owned();
        if !out.starts_with(|c: char| c.is_ascii_lowercase()) {
            out.insert_str(0, "t_");
        }
        out.truncate(Self::MAX_LEN - 4);
        let out = out.trim_end_matches('_').to_owned();
        if out.len() < Self::MIN_LEN
            || out.starts_with("pg_")
            || RESERVED_SLUGS.contains(&out.as_str())
        {
            return Self::parse_field(&format!("{out}_org"), "organization_name");
        }
        Self::parse_field(&out, "organization_name")
    }

    /// The slug as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantSlug({})", self.0)
    }
}

impl FromStr for TenantSlug {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::new(s)
    }
}

impl AsRef<str> for TenantSlug {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for TenantSlug {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_slugs() {
        for ok in ["acme", "acme_corp", "a12", "x".repeat(48).as_str()] {
            assert!(TenantSlug::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_bad_slugs_with_the_field() {
        for bad in [
            "",
            "ab",
            "Acme",
            "1acme",
            "acme-corp",
            "acme corp",
            "a\"; drop table x; --",
            "postgres",
            "template0",
            "public",
            "admin",
            "global",
            "shared",
            "app",
            "owner",
            "registry",
            "shared_owner",
            "template_owner",
            "information_schema",
            "pg_foo",
            "ümlaut",
            &"x".repeat(49),
        ] {
            let err = TenantSlug::new(bad).err();
            assert_eq!(
                err.as_ref().and_then(|e| e.field()),
                Some("slug"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn derives_slugs_from_names() {
        assert_eq!(
            TenantSlug::from_name("Acme Corp!").map(|s| s.0).ok(),
            Some("acme_corp".into())
        );
        assert_eq!(
            TenantSlug::from_name("42 Things").map(|s| s.0).ok(),
            Some("t_42_things".into())
        );
        assert_eq!(
            TenantSlug::from_name("Admin").map(|s| s.0).ok(),
            Some("admin_org".into())
        );
        assert_eq!(
            TenantSlug::from_name("Shared").map(|s| s.0).ok(),
            Some("shared_org".into())
        );
        assert!(TenantSlug::from_name("Ünïcødé ☃").is_ok());
        assert!(TenantSlug::from_name(&"Long name ".repeat(40)).is_ok());
    }
}
