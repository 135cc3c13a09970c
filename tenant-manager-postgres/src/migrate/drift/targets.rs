//! What a drift check compares: each database or schema tenant's storage, and each shared
//! database once, with the migration version the registry recorded for it.

use std::collections::BTreeMap;

use sqlx::{AssertSqlSafe, FromRow};
use tenant_manager_core::{Entity, Isolation, Result, ServerId, Tenant, TenantId};

use super::expected::Shape;
use super::report::{DriftOptions, DriftTenant, StorageRef};
use crate::ident::Ident;
use crate::pg::SqlxResultExt;
use crate::storage::TenantStorage;

#[derive(FromRow)]
struct Row {
    #[sqlx(flatten)]
    tenant: crate::registry::TenantRow,
    version: i64,
}

/// One schema to compare.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    pub(crate) isolation: Isolation,
    pub(crate) server: ServerId,
    pub(crate) database: Ident,
    pub(crate) schema: Ident,
    pub(crate) tenants: Vec<DriftTenant>,
    /// The schema tenant whose id its wall policies embed.
    pub(crate) own_tenant: Option<TenantId>,
    pub(crate) shape: Shape,
}

impl Checked {
    pub(crate) fn storage_ref(&self) -> StorageRef {
        StorageRef {
            server: self.server.to_string(),
            database: self.database.as_str().to_owned(),
            schema: self.schema.as_str().to_owned(),
        }
    }
}

/// The schemas to compare: tenants in the options' statuses (and isolation) with a recorded
/// migration version; shared tenants grouped by database, at the newest of their versions.
pub(crate) async fn list(storage: &TenantStorage, options: &DriftOptions) -> Result<Vec<Checked>> {
    let columns = crate::registry::tenant_columns("t");
    let sql = format!(
        "SELECT {columns}, m.version FROM tm_tenants t \
         JOIN tm_tenant_migrations m ON m.tenant_id = t.id \
         WHERE t.status = ANY($1) AND m.version > 0 \
           AND ($2::text IS NULL OR t.isolation = $2) \
         ORDER BY t.id"
    );
    let statuses: Vec<&str> = options.statuses.iter().map(|s| s.as_str()).collect();
    let rows = sqlx::query_as::<_, Row>(AssertSqlSafe(sql))
        .bind(statuses)
        .bind(options.isolation.map(|i| i.as_str()))
        .fetch_all(&storage.global)
        .await
        .map_db(Entity::Tenant)?;
    let mut checked = Vec::new();
    let mut shared: BTreeMap<(ServerId, String), Checked> = BTreeMap::new();
    for row in rows {
        let tenant = Tenant::try_from(row.tenant)?;
        let target = storage.target(&tenant)?;
        let who = DriftTenant {
            id: tenant.id,
            slug: tenant.slug.to_string(),
        };
        let schema = match &target.schema {
            Some(schema) => schema.clone(),
            None => Ident::new("public", "schema")?,
        };
        if tenant.isolation == Isolation::Shared {
            let key = (target.server.clone(), target.database.as_str().to_owned());
            if let Some(entry) = shared.get_mut(&key) {
                entry.tenants.push(who);
                entry.shape.version = entry.shape.version.max(row.version);
                continue;
            }
            let entry = Checked {
                isolation: Isolation::Shared,
                server: target.server,
                database: target.database,
                schema,
                tenants: vec![who],
                own_tenant: None,
                shape: Shape::of(storage, Isolation::Shared, row.version)?,
            };
            shared.insert(key, entry);
            continue;
        }
        checked.push(Checked {
            isolation: tenant.isolation,
            server: target.server,
            database: target.database,
            schema,
            tenants: vec![who],
            own_tenant: (tenant.isolation == Isolation::Schema).then_some(tenant.id),
            shape: Shape::of(storage, tenant.isolation, row.version)?,
        });
    }
    checked.extend(shared.into_values());
    Ok(checked)
}
