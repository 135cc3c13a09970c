//! JSON views of the toolkit's records, as the API shows them.

use serde::Serialize;
use tenant_manager::{QuotaPolicy, Tenant, User};
use time::OffsetDateTime;
use uuid::Uuid;

/// A tenant in short: as registration answers it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct TenantSummary {
    pub(crate) id: Uuid,
    pub(crate) slug: String,
    pub(crate) name: String,
    /// `pending`, `provisioning`, `active`, `suspended`, `failed`, `deleting` or `deleted`.
    pub(crate) status: String,
    /// `database`, `schema` or `shared`.
    pub(crate) isolation: String,
}

impl From<&Tenant> for TenantSummary {
    fn from(t: &Tenant) -> Self {
        Self {
            id: *t.id.as_uuid(),
            slug: t.slug.to_string(),
            name: t.name.clone(),
            status: t.status.to_string(),
            isolation: t.isolation.to_string(),
        }
    }
}

/// A user of a tenant.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct UserView {
    pub(crate) id: Uuid,
    pub(crate) email: String,
    /// `owner`, `admin` or `member`.
    pub(crate) role: String,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            id: *u.id.as_uuid(),
            email: u.email.to_string(),
            role: u.role.to_string(),
        }
    }
}

/// A request rate.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RateView {
    /// Requests per window.
    pub(crate) limit: u64,
    /// Window in milliseconds.
    pub(crate) window_ms: u64,
}

/// The quota that applies to a tenant.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct QuotaView {
    pub(crate) rate: RateView,
    pub(crate) max_users: u64,
    pub(crate) max_storage_bytes: u64,
    pub(crate) max_connections: u32,
}

impl From<&QuotaPolicy> for QuotaView {
    fn from(q: &QuotaPolicy) -> Self {
        Self {
            rate: RateView {
                limit: q.rate.limit,
                window_ms: q.rate.window_ms,
            },
            max_users: q.max_users,
            max_storage_bytes: q.max_storage_bytes,
            max_connections: q.max_connections,
        }
    }
}

/// A tenant in full.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct TenantView {
    #[serde(flatten)]
    pub(crate) summary: TenantSummary,
    /// Why the tenant is suspended or failed.
    pub(crate) status_reason: Option<String>,
    pub(crate) plan: String,
    pub(crate) region: Option<String>,
    pub(crate) domain: Option<String>,
    /// The quota override, when one is set (else the plan's policy applies).
    pub(crate) quota_override: Option<QuotaView>,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) updated_at: OffsetDateTime,
}

impl From<&Tenant> for TenantView {
    fn from(t: &Tenant) -> Self {
        Self {
            summary: TenantSummary::from(t),
            status_reason: t.status_reason.clone(),
            plan: t.plan.to_string(),
            region: t.region.clone(),
            domain: t.domain.clone(),
            quota_override: t.quota.as_ref().map(QuotaView::from),
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}
