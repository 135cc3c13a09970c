//! Rows of the registry tables and their conversion to domain types.

use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use tenant_manager_core::{
    Email, Error, PasswordHash, Placement, Plan, QuotaPolicy, Result, ServerId, Tenant, TenantId,
    TenantSlug, User, UserId,
};

/// Columns of `tm_tenants`, in the order [`TenantRow`] reads them.
pub(crate) const TENANT_COLUMNS: &str = "id, slug, name, status, status_reason, plan, quota, \
     isolation, server_id, database_name, schema_name, region, domain, created_at, updated_at";

/// [`TENANT_COLUMNS`] qualified with a table alias.
pub(crate) fn tenant_columns(alias: &str) -> String {
    TENANT_COLUMNS
        .split(", ")
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Columns of `tm_users`, in the order [`UserRow`] reads them.
pub(crate) const USER_COLUMNS: &str = "id, tenant_id, email, role, password_hash, created_at";

/// One row of `tm_tenants`.
#[derive(Debug, FromRow)]
pub(crate) struct TenantRow {
    id: Uuid,
    slug: String,
    name: String,
    status: String,
    status_reason: Option<String>,
    plan: String,
    quota: Option<serde_json::Value>,
    isolation: String,
    server_id: String,
    database_name: String,
    schema_name: Option<String>,
    region: Option<String>,
    domain: Option<String>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

/// A stored value that no longer parses: the database was edited by hand or by a newer version.
fn corrupt(what: &'static str, err: Error) -> Error {
    Error::internal_with(format!("corrupt registry row: {what}"), err)
}

impl TryFrom<TenantRow> for Tenant {
    type Error = Error;

    fn try_from(row: TenantRow) -> Result<Self> {
        let quota = match row.quota {
            Some(value) => Some(
                serde_json::from_value::<QuotaPolicy>(value)
                    .map_err(|e| Error::internal_with("corrupt registry row: quota", e))?,
            ),
            None => None,
        };
        Ok(Tenant {
            id: TenantId::from_uuid(row.id),
            slug: TenantSlug::new(&row.slug).map_err(|e| corrupt("slug", e))?,
            name: row.name,
            status: row.status.parse().map_err(|e| corrupt("status", e))?,
            status_reason: row.status_reason,
            plan: Plan::new(row.plan).map_err(|e| corrupt("plan", e))?,
            quota,
            isolation: row.isolation.parse().map_err(|e| corrupt("isolation", e))?,
            placement: Placement {
                server: ServerId::new(row.server_id).map_err(|e| corrupt("server_id", e))?,
                database: row.database_name,
                schema: row.schema_name,
            },
            region: row.region,
            domain: row.domain,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// One row of `tm_users`.
#[derive(Debug, FromRow)]
pub(crate) struct UserRow {
    id: Uuid,
    tenant_id: Uuid,
    email: String,
    role: String,
    password_hash: String,
    created_at: OffsetDateTime,
}

impl TryFrom<UserRow> for User {
    type Error = Error;

    fn try_from(row: UserRow) -> Result<Self> {
        Ok(User {
            id: UserId::from_uuid(row.id),
            tenant_id: TenantId::from_uuid(row.tenant_id),
            email: Email::new(&row.email).map_err(|e| corrupt("email", e))?,
            role: row.role.parse().map_err(|e| corrupt("role", e))?,
            password_hash: PasswordHash::from_phc(row.password_hash),
            created_at: row.created_at,
        })
    }
}

/// The quota override as stored (`jsonb`).
pub(crate) fn quota_json(quota: Option<&QuotaPolicy>) -> Result<Option<serde_json::Value>> {
    quota
        .map(|q| {
            serde_json::to_value(q).map_err(|e| Error::internal_with("quota not serialisable", e))
        })
        .transpose()
}
