//! `StorageNaming`: the names a deployment gives the Postgres objects it creates.
//!
//! Every name starts with the deployment's storage prefix and `_`; the prefix has no `_` of
//! its own, so the prefix of any name is unambiguous and two deployments with different
//! prefixes never produce the same name. Within one deployment, tenants' objects are
//! `<prefix>_t_<slug>` and the deployment's own objects are `<prefix>_<word>` where the word
//! never starts with `t_` (`shared`, `template_*`, `shared_owner`, `app`, `registry`), so no
//! slug reaches them.

use std::fmt;

use super::{Isolation, Placement, ServerId, TenantSlug};
use crate::error::{Error, Result};

/// The names of the storage one deployment creates, all under its storage prefix.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct StorageNaming {
    prefix: String,
}

impl StorageNaming {
    /// The default storage prefix.
    pub const DEFAULT_PREFIX: &'static str = "tm";
    /// Longest prefix: `<prefix>_t_<slug>` stays within Postgres' 63-byte identifiers for
    /// slugs of up to [`TenantSlug::MAX_LEN`] bytes.
    pub const MAX_PREFIX_LEN: usize = 63 - 3 - TenantSlug::MAX_LEN;

    /// Validates a storage prefix: 1 to [`Self::MAX_PREFIX_LEN`] lowercase ASCII letters and
    /// digits, starting with a letter, no `_`; not `pg` (Postgres reserves `pg_*` roles) nor
    /// `tenant` (the names of tenants created before prefixes, `tenant_<slug>`).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on field `storage_prefix`.
    pub fn new(prefix: &str) -> Result<Self> {
        let ok = (1..=Self::MAX_PREFIX_LEN).contains(&prefix.len())
            && prefix.starts_with(|c: char| c.is_ascii_lowercase())
            && prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !ok {
            return Err(Error::invalid(
                "storage_prefix",
                "must be 1 to 12 lowercase letters or digits, starting with a letter",
            ));
        }
        if prefix == "pg" || prefix == "tenant" {
            return Err(Error::invalid(
                "storage_prefix",
                "is reserved (pg_* belongs to Postgres, tenant_* to tenants of old versions)",
            ));
        }
        Ok(Self {
            prefix: prefix.to_owned(),
        })
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The database (database isolation), schema (schema isolation) and login role of a
    /// tenant: `<prefix>_t_<slug>`.
    pub fn tenant_object(&self, slug: &TenantSlug) -> String {
        format!("{}_t_{}", self.prefix, slug.as_str())
    }

    /// One of the deployment's own objects: `<prefix>_<word>`. `word` must not start with
    /// `t_` (tenants' namespace); callers pass constants such as `shared` or `app`.
    pub fn infra(&self, word: &str) -> String {
        format!("{}_{word}", self.prefix)
    }

    /// The default database of schema- and row-isolated tenants: `<prefix>_shared`.
    pub fn shared_database(&self) -> String {
        self.infra("shared")
    }

    /// The placement of a new tenant on `server`: its own database `<prefix>_t_<slug>`
    /// (database isolation), its own schema of that name in `shared_database` (schema
    /// isolation), or rows in `shared_database` (shared isolation).
    pub fn placement(
        &self,
        slug: &TenantSlug,
        isolation: Isolation,
        server: ServerId,
        shared_database: &str,
    ) -> Placement {
        let name = self.tenant_object(slug);
        let (database, schema) = match isolation {
            Isolation::Database => (name, None),
            Isolation::Schema => (shared_database.to_owned(), Some(name)),
            Isolation::Shared => (shared_database.to_owned(), None),
        };
        Placement {
            server,
            database,
            schema,
        }
    }

    /// Whether `name` is a tenant object of this deployment (`<prefix>_t_*`).
    pub fn is_tenant_object(&self, name: &str) -> bool {
        name.strip_prefix(self.prefix.as_str())
            .is_some_and(|rest| rest.starts_with("_t_"))
    }
}

impl Default for StorageNaming {
    fn default() -> Self {
        Self {
            prefix: Self::DEFAULT_PREFIX.to_owned(),
        }
    }
}

impl fmt::Debug for StorageNaming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StorageNaming({})", self.prefix)
    }
}

impl fmt::Display for StorageNaming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slug(s: &str) -> TenantSlug {
        TenantSlug::new(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn prefixes_are_bounded_and_carry_no_underscore() {
        for ok in ["tm", "crm", "e1234abcd", "abcdefghijkl"] {
            assert!(StorageNaming::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a_b",
            "Tm",
            "1tm",
            "abcdefghijklm",
            "pg",
            "tenant",
            "t-m",
        ] {
            let err = StorageNaming::new(bad).err();
            assert_eq!(
                err.as_ref().and_then(|e| e.field()),
                Some("storage_prefix"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn tenant_names_fit_postgres_and_never_meet_infra_names() {
        let naming =
            StorageNaming::new(&"p".repeat(StorageNaming::MAX_PREFIX_LEN)).unwrap_or_else(|e| {
                panic!("{e}");
            });
        let longest = slug(&"x".repeat(TenantSlug::MAX_LEN));
        assert_eq!(naming.tenant_object(&longest).len(), 63);
        let naming = StorageNaming::default();
        let shared = naming.placement(&slug("acme"), Isolation::Schema, ServerId::default(), "s");
        assert_eq!(shared.schema.as_deref(), Some("tm_t_acme"));
        assert_eq!(naming.shared_database(), "tm_shared");
        assert!(naming.is_tenant_object("tm_t_acme"));
        for infra in ["tm_shared", "tm_template_owner", "tm_app", "tmx_t_acme"] {
            assert!(!naming.is_tenant_object(infra), "{infra}");
        }
        let db = naming.placement(&slug("acme"), Isolation::Database, ServerId::default(), "s");
        assert_eq!((db.database.as_str(), db.schema), ("tm_t_acme", None));
    }
}
