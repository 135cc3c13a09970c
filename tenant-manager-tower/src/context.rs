//! `TenantContext`: who a request is for, as established by the `TenantLayer`.

use std::fmt;

use tenant_manager_core::{Role, Tenant, UserId};

/// How the tenant of a request was established.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResolvedBy {
    /// The `tid` claim of a verified bearer token.
    Jwt,
    /// The subdomain (or custom domain) of the `Host`.
    Subdomain,
    /// A header set by a trusted internal hop, such as `X-Tenant-Id`.
    Header,
    /// A segment of the request path.
    Path,
    /// A resolver of the host application.
    Custom,
}

impl ResolvedBy {
    /// Stable lowercase name, as recorded in traces.
    pub fn as_str(self) -> &'static str {
        match self {
            ResolvedBy::Jwt => "jwt",
            ResolvedBy::Subdomain => "subdomain",
            ResolvedBy::Header => "header",
            ResolvedBy::Path => "path",
            ResolvedBy::Custom => "custom",
        }
    }
}

impl fmt::Display for ResolvedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The tenant a request is served for, and the user when a token named one.
///
/// The [`TenantLayer`](crate::TenantLayer) inserts it into the request extensions once the
/// tenant is known to exist and to be `Active`; handlers read it from there (or through the
/// axum extractors), and the [`QuotaLayer`](crate::QuotaLayer) and
/// [`MetricsLayer`](crate::MetricsLayer) use it when they run inside the `TenantLayer`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TenantContext {
    /// The tenant record (status `Active`).
    pub tenant: Tenant,
    /// The authenticated user, when a verified token named one.
    pub user: Option<UserId>,
    /// The user's role, when a verified token named one.
    pub role: Option<Role>,
    /// How the tenant was established.
    pub via: ResolvedBy,
}

impl TenantContext {
    /// A context without a user.
    pub fn new(tenant: Tenant, via: ResolvedBy) -> Self {
        Self {
            tenant,
            user: None,
            role: None,
            via,
        }
    }

    /// Sets the authenticated user and role.
    #[must_use]
    pub fn with_user(mut self, user: UserId, role: Role) -> Self {
        self.user = Some(user);
        self.role = Some(role);
        self
    }

    /// Whether the request carries a user whose role includes `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.role.is_some_and(|own| own.includes(role))
    }
}
