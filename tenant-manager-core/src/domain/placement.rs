//! Where a tenant lives and how it is kept apart: its isolation mode, the database server it
//! is on, and its placement (server, database, schema).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::TenantSlug;
use super::rules::validate_short_name;
use crate::error::Error;

/// How a tenant's data is kept apart from other tenants'.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// Its own database, owned by its own login role.
    Database,
    /// Its own schema in a database shared with other tenants.
    Schema,
    /// Rows tagged with `tenant_id` in shared tables, under row-level security.
    Shared,
}

impl Isolation {
    /// Stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Database => "database",
            Isolation::Schema => "schema",
            Isolation::Shared => "shared",
        }
    }
}

impl fmt::Display for Isolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Isolation {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "database" => Ok(Isolation::Database),
            "schema" => Ok(Isolation::Schema),
            "shared" => Ok(Isolation::Shared),
            _ => Err(Error::invalid(
                "isolation",
                "must be one of database, schema, shared",
            )),
        }
    }
}

/// Names a database server of the deployment's server map.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ServerId(String);

impl ServerId {
    /// Validates a server id: 1 to 32 lowercase letters, digits, `_` or `-`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on field `server`.
    pub fn new(id: impl Into<String>) -> Result<Self, Error> {
        let id = id.into();
        validate_short_name(&id, "server")?;
        Ok(Self(id))
    }

    /// The server id `default`, used when a deployment has one server.
    pub fn default_server() -> Self {
        Self("default".to_owned())
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for ServerId {
    fn default() -> Self {
        Self::default_server()
    }
}

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a tenant's data lives: which server, which database, which schema.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Placement {
    /// The database server (key of the server map).
    pub server: ServerId,
    /// The database on that server.
    pub database: String,
    /// The schema, for [`Isolation::Schema`].
    pub schema: Option<String>,
}

impl Placement {
    /// Prefix of the per-tenant database, schema and role names of tenants created before
    /// storage prefixes ([`StorageNaming`](super::StorageNaming)): `tenant_<slug>`. Such tenants keep their recorded
    /// names; new tenants are named by [`StorageNaming::tenant_object`](super::StorageNaming::tenant_object).
    pub const PREFIX: &'static str = "tenant_";

    /// The placement of tenants created before storage prefixes: `tenant_<slug>` as database
    /// (database isolation) or schema (schema isolation) on `server`; shared tenants live in
    /// `shared_database`. New tenants are placed by [`StorageNaming::placement`](super::StorageNaming::placement).
    pub fn conventional(
        slug: &TenantSlug,
        isolation: Isolation,
        server: ServerId,
        shared_database: &str,
    ) -> Self {
        let name = format!("{}{}", Self::PREFIX, slug.as_str());
        match isolation {
            Isolation::Database => Self {
                server,
                database: name,
                schema: None,
            },
            Isolation::Schema => Self {
                server,
                database: shared_database.to_owned(),
                schema: Some(name),
            },
            Isolation::Shared => Self {
                server,
                database: shared_database.to_owned(),
                schema: None,
            },
        }
    }

    /// The role of the tenant `slug` placed here: named like its own storage (the database for
    /// [`Isolation::Database`], the schema for [`Isolation::Schema`]) when that is named for
    /// the tenant (`<prefix>_t_<slug>`, or `tenant_<slug>` before storage prefixes), else
    /// `tenant_<slug>` (placements chosen by hand, as before). So tenants of every version
    /// keep their role. `None` for [`Isolation::Shared`] (no role).
    pub fn tenant_role(&self, slug: &TenantSlug, isolation: Isolation) -> Option<String> {
        let own = match isolation {
            Isolation::Database => Some(self.database.as_str()),
            Isolation::Schema => self.schema.as_deref(),
            Isolation::Shared => return None,
        };
        let legacy = Self::role_name(slug);
        Some(match own {
            Some(name)
                if name == legacy
                    || name
                        .strip_suffix(slug.as_str())
                        .is_some_and(|head| head.ends_with("_t_")) =>
            {
                name.to_owned()
            }
            _ => legacy,
        })
    }

    /// The login role of a tenant placed by [`Placement::conventional`]: `tenant_<slug>`.
    /// [`Tenant::role_name`](super::Tenant::role_name) gives the role of any tenant from its recorded placement.
    pub fn role_name(slug: &TenantSlug) -> String {
        format!("{}{}", Self::PREFIX, slug.as_str())
    }
}
