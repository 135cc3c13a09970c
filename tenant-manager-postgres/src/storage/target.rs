//! `Target`: the validated names of one tenant's storage.

use tenant_manager_core::{Error, Isolation, Result, ServerId, Tenant};

use super::TenantStorage;
use crate::ident::Ident;

/// The validated names of one tenant's storage.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// Isolation mode.
    pub(crate) isolation: Isolation,
    /// Server of the placement.
    pub(crate) server: ServerId,
    /// The tenant's database (own or shared).
    pub(crate) database: Ident,
    /// The tenant's login role (database and schema isolation).
    pub(crate) role: Option<Ident>,
    /// The tenant's schema (schema isolation) or the shared tables' schema (shared isolation).
    pub(crate) schema: Option<Ident>,
}

impl Target {
    /// The tenant's login role (database and schema isolation).
    ///
    /// # Errors
    /// `Internal` for a shared tenant, which has none.
    pub(crate) fn role(&self) -> Result<&Ident> {
        self.role
            .as_ref()
            .ok_or_else(|| Error::internal("tenant target without a role"))
    }
}

impl TenantStorage {
    /// The validated names of a tenant's storage.
    pub(crate) fn target(&self, tenant: &Tenant) -> Result<Target> {
        self.servers.get(&tenant.placement.server)?;
        let database = Ident::new(&tenant.placement.database, "placement.database")?;
        let tenant_schema = || -> Result<Ident> {
            let schema = tenant.placement.schema.as_deref().ok_or_else(|| {
                Error::invalid("placement.schema", "schema isolation needs a schema")
            })?;
            Ident::new(schema, "placement.schema")
        };
        let role = || crate::credentials::tenant_role(tenant);
        let (role, schema) = match tenant.isolation {
            Isolation::Database => (Some(role()?), None),
            Isolation::Schema => (Some(role()?), Some(tenant_schema()?)),
            Isolation::Shared => (None, Some(self.settings.shared_schema.clone())),
        };
        Ok(Target {
            isolation: tenant.isolation,
            server: tenant.placement.server.clone(),
            database,
            role,
            schema,
        })
    }
}
