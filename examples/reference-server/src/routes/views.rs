//! JSON views of the toolkit's records, as the API shows them.

use std::fmt;

use axum::Json;
use serde::Serialize;
use tenant_manager::auth::IssuedToken;
use tenant_manager::{BackupRecord, QuotaPolicy, Tenant, User};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::ApiError;

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

/// A backup.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct BackupView {
    id: Uuid,
    tenant_id: Uuid,
    /// Key of the artifact in the backup store.
    key: String,
    size_bytes: u64,
    /// SHA-256 of the artifact, hex.
    sha256: String,
    /// `pg_dump_custom`, `json`, ...
    format: String,
    /// Isolation of the tenant it was taken of, when recorded.
    isolation: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    /// Rows of each table when it was taken (`schema.table` to a count), when recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    table_rows: Option<std::collections::BTreeMap<String, u64>>,
}

impl From<BackupRecord> for BackupView {
    fn from(r: BackupRecord) -> Self {
        Self {
            id: *r.id.as_uuid(),
            tenant_id: *r.tenant_id.as_uuid(),
            key: r.key,
            size_bytes: r.size_bytes,
            sha256: r.sha256,
            format: r.format,
            isolation: r.isolation.map(|i| i.to_string()),
            created_at: r.created_at,
            table_rows: r.table_rows,
        }
    }
}

/// An access token as the API hands it out (flattened into the answers that carry one).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TokenView {
    pub(crate) access_token: String,
    /// Always `Bearer`.
    pub(crate) token_type: &'static str,
    /// Seconds until the token expires.
    pub(crate) expires_in: u64,
}

impl From<&IssuedToken> for TokenView {
    fn from(t: &IssuedToken) -> Self {
        Self {
            access_token: t.access_token.expose().to_owned(),
            token_type: t.token_type,
            expires_in: t.expires_in.as_secs(),
        }
    }
}

impl fmt::Debug for TokenView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenView")
            .field("access_token", &"***")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .finish()
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
    /// Where its data lives: shown to operators (the admin API), not to the tenant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) placement: Option<PlacementView>,
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
            placement: None,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// Where a tenant's data lives.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct PlacementView {
    /// The Postgres server (`default`, or an id of `TENANT_SERVERS`).
    #[schema(example = "pg2")]
    pub(crate) server: String,
    /// The database on that server.
    pub(crate) database: String,
    /// The schema, for schema isolation.
    pub(crate) schema: Option<String>,
}

impl TenantView {
    /// The operator's view: the tenant in full, with its placement.
    pub(crate) fn admin(t: &Tenant) -> Self {
        Self {
            placement: Some(PlacementView {
                server: t.placement.server.to_string(),
                database: t.placement.database.clone(),
                schema: t.placement.schema.clone(),
            }),
            ..Self::from(t)
        }
    }
}

/// The answer of an admin route that returns one tenant: the tenant a toolkit call gave back,
/// in full with its placement, or the call's error.
pub(crate) fn tenant_reply(
    result: tenant_manager::Result<Tenant>,
) -> Result<Json<TenantView>, ApiError> {
    Ok(Json(TenantView::admin(&result?)))
}
