//! The databases of a deployment's schema and shared tenants: where the wall stands.

use std::collections::BTreeMap;

use tenant_manager_core::{
    Entity, Error, Isolation, Placement, Result, ServerId, TenantId, TenantSlug,
};

use crate::ident::Ident;
use crate::pg::SqlxResultExt;
use crate::storage::TenantStorage;

/// A database of schema or shared tenants and what lives in it.
#[derive(Debug, Default)]
pub(crate) struct Database {
    /// Schema tenants: id, role, schema.
    pub(crate) schemas: Vec<(TenantId, Ident, Ident)>,
    /// Whether shared tenants live there.
    pub(crate) shared: bool,
}

/// Databases of schema and shared tenants whose storage was created, per server.
pub(crate) async fn databases(
    storage: &TenantStorage,
) -> Result<BTreeMap<(ServerId, String), Database>> {
    let rows: Vec<(uuid::Uuid, String, String, String, String, Option<String>)> = sqlx::query_as(
        "SELECT t.id, t.slug, t.isolation, t.server_id, t.database_name, t.schema_name \
             FROM tm_tenants t WHERE t.isolation IN ('schema', 'shared') \
               AND EXISTS (SELECT 1 FROM tm_provision_steps s \
                           WHERE s.tenant_id = t.id AND s.step = 'storage_created') \
             ORDER BY t.server_id, t.database_name, t.id",
    )
    .fetch_all(&storage.global)
    .await
    .map_db(Entity::Tenant)?;
    let mut found: BTreeMap<(ServerId, String), Database> = BTreeMap::new();
    for (id, slug, isolation, server, database, schema) in rows {
        let server = ServerId::new(&server)
            .map_err(|_| Error::internal("corrupt registry row: server id"))?;
        let entry = found.entry((server, database)).or_default();
        if isolation == "shared" {
            entry.shared = true;
        } else {
            let role = Ident::new(&schema_role(&slug, schema.clone())?, "role")?;
            let schema = Ident::new(
                schema.as_deref().ok_or_else(|| {
                    Error::internal("corrupt registry row: schema tenant without schema")
                })?,
                "placement.schema",
            )?;
            entry.schemas.push((TenantId::from_uuid(id), role, schema));
        }
    }
    Ok(found)
}

/// The role of a schema tenant from its registry row ([`Placement::tenant_role`]).
fn schema_role(slug: &str, schema: Option<String>) -> Result<String> {
    let slug =
        TenantSlug::new(slug).map_err(|_| Error::internal("corrupt registry row: tenant slug"))?;
    let placement = Placement {
        server: ServerId::default_server(),
        database: String::new(),
        schema,
    };
    placement
        .tenant_role(&slug, Isolation::Schema)
        .ok_or_else(|| Error::internal("schema tenant without a role"))
}
