//! `TenantContext`: who a request is for, as established by the `TenantLayer`, and the
//! [`Resolution`] it is built from: what a resolver found (the tenant's key, the user of a
//! verified token, and how), kept whole in the context.

use std::fmt;

use tenant_manager_core::{CacheKey, Role, Tenant, UserId};

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

/// What one resolver found: the tenant a request names, and the user if a token named one.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Resolution {
    /// How to look the tenant up.
    pub key: CacheKey,
    /// The authenticated user, when the resolver verified a credential.
    pub user: Option<UserId>,
    /// The user's role, when the resolver verified a credential.
    pub role: Option<Role>,
    /// Which kind of resolver found it.
    pub via: ResolvedBy,
}

impl Resolution {
    /// A resolution without a user.
    pub fn new(key: CacheKey, via: ResolvedBy) -> Self {
        Self {
            key,
            user: None,
            role: None,
            via,
        }
    }

    /// Sets the authenticated user. Only resolvers that verified a credential may set it.
    #[must_use]
    pub fn with_user(mut self, user: UserId, role: Role) -> Self {
        self.user = Some(user);
        self.role = Some(role);
        self
    }

    /// Whether `tenant` is the tenant this resolution names.
    pub fn names(&self, tenant: &Tenant) -> bool {
        match &self.key {
            CacheKey::Id(id) => *id == tenant.id,
            CacheKey::Slug(slug) => *slug == tenant.slug,
            CacheKey::Domain(domain) => tenant
                .domain
                .as_deref()
                .is_some_and(|own| own.eq_ignore_ascii_case(domain)),
        }
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
    /// What named the tenant (the first resolver's key and kind), with the user a verified
    /// token named, if any.
    pub resolution: Resolution,
}

impl TenantContext {
    /// A context without a user, as if resolved by the tenant's id.
    pub fn new(tenant: Tenant, via: ResolvedBy) -> Self {
        let resolution = Resolution::new(CacheKey::Id(tenant.id), via);
        Self::from_resolution(tenant, resolution)
    }

    /// The context of `tenant`, found by `resolution` (which must name it).
    pub fn from_resolution(tenant: Tenant, resolution: Resolution) -> Self {
        Self { tenant, resolution }
    }

    /// Sets the authenticated user and role.
    #[must_use]
    pub fn with_user(mut self, user: UserId, role: Role) -> Self {
        self.resolution = self.resolution.with_user(user, role);
        self
    }

    /// The authenticated user, when a verified token named one.
    pub fn user(&self) -> Option<UserId> {
        self.resolution.user
    }

    /// The user's role, when a verified token named one.
    pub fn role(&self) -> Option<Role> {
        self.resolution.role
    }

    /// How the tenant was established.
    pub fn via(&self) -> ResolvedBy {
        self.resolution.via
    }

    /// Whether the request carries a user whose role includes `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.resolution.role.is_some_and(|own| own.includes(role))
    }
}
