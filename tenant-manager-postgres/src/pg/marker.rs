//! The comments that mark databases, schemas and roles as tenant-manager's, so it never
//! alters or drops an object it did not create.

use tenant_manager_core::{Entity, Error, StorageNaming, TenantId};

use crate::ident::Ident;

/// What every tenant's marker starts with; the tenant's id follows.
pub(crate) const TENANT_MARKER_PREFIX: &str = "tenant-manager:tenant:";

/// The comment that marks a role, database or schema as a tenant's.
pub(crate) fn tenant_marker(tenant: TenantId) -> String {
    format!("{TENANT_MARKER_PREFIX}{tenant}")
}

/// The comment that marked shared databases before storage prefixes; a database marked so
/// is claimed by [`crate::TenantStorage::claim_legacy_shared_databases`].
pub(crate) const LEGACY_SHARED_MARKER: &str = "tenant-manager:shared";

/// The comment that marks a database shared by tenants as one deployment's.
pub(crate) fn shared_marker(naming: &StorageNaming) -> String {
    format!("{LEGACY_SHARED_MARKER}:{}", naming.prefix())
}

/// The error for a shared database whose marker is not this deployment's.
pub(crate) fn foreign_shared_database(database: &Ident, comment: Option<&str>) -> Error {
    let why = match comment {
        Some(LEGACY_SHARED_MARKER) => {
            "is marked as a shared database of an older version without a storage prefix: \
             claim it with `tenant-cli migrate claim-shared` (TenantStorage::\
             claim_legacy_shared_databases)"
        }
        Some(c) if c.starts_with(&format!("{LEGACY_SHARED_MARKER}:")) => {
            "is the shared database of another deployment (another storage prefix)"
        }
        _ => "exists and is not a shared database of tenant-manager",
    };
    Error::conflict(
        Entity::Tenant,
        "placement.database",
        format!("database {} {why}", database.as_str()),
    )
}
