//! The tenant record, a new tenant, and an update of one.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::rules::validate_region;
use super::{
    Isolation, Placement, Plan, QuotaPolicy, ServerId, StorageNaming, TenantId, TenantSlug,
    TenantStatus,
};
use crate::error::Error;

/// A tenant of the SaaS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    /// Identity.
    pub id: TenantId,
    /// Short unique name, used in subdomains and storage names.
    pub slug: TenantSlug,
    /// Display name.
    pub name: String,
    /// Life-cycle status.
    pub status: TenantStatus,
    /// Why the tenant is in its status (for `Failed` and `Suspended`).
    pub status_reason: Option<String>,
    /// Plan.
    pub plan: Plan,
    /// Quota override; `None` means the plan's policy.
    pub quota: Option<QuotaPolicy>,
    /// How its data is isolated.
    pub isolation: Isolation,
    /// Where its data lives.
    pub placement: Placement,
    /// Region the tenant is served from.
    pub region: Option<String>,
    /// Custom domain, unique across tenants.
    pub domain: Option<String>,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl Tenant {
    /// The tenant's own role, from its recorded placement ([`Placement::tenant_role`]).
    /// `None` for [`Isolation::Shared`] (no role).
    pub fn role_name(&self) -> Option<String> {
        self.placement.tenant_role(&self.slug, self.isolation)
    }
}

/// What a registry needs to create a tenant. Build with [`NewTenant::new`] and `with_*`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewTenant {
    /// Identity (fresh by default).
    pub id: TenantId,
    /// Unique slug.
    pub slug: TenantSlug,
    /// Display name.
    pub name: String,
    /// Plan.
    pub plan: Plan,
    /// Isolation mode.
    pub isolation: Isolation,
    /// Placement.
    pub placement: Placement,
    /// Region.
    pub region: Option<String>,
    /// Custom domain.
    pub domain: Option<String>,
}

impl NewTenant {
    /// A new tenant placed by the default [`StorageNaming`] on the default server (schema and
    /// shared tenants in its shared database), `free` plan.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `name` when the name is empty, too long or has control characters.
    pub fn new(
        slug: TenantSlug,
        name: impl Into<String>,
        isolation: Isolation,
    ) -> Result<Self, Error> {
        let name = validate_name(name.into(), "name")?;
        let naming = StorageNaming::default();
        let placement = naming.placement(
            &slug,
            isolation,
            ServerId::default_server(),
            &naming.shared_database(),
        );
        Ok(Self {
            id: TenantId::new(),
            slug,
            name,
            plan: Plan::free(),
            isolation,
            placement,
            region: None,
            domain: None,
        })
    }

    /// Sets the plan.
    #[must_use]
    pub fn with_plan(mut self, plan: Plan) -> Self {
        self.plan = plan;
        self
    }

    /// Sets the placement.
    #[must_use]
    pub fn with_placement(mut self, placement: Placement) -> Self {
        self.placement = placement;
        self
    }

    /// Sets the region.
    #[must_use]
    pub fn with_region(mut self, region: Option<String>) -> Self {
        self.region = region;
        self
    }

    /// Sets the custom domain (validated by [`validate_domain`] at the registry).
    #[must_use]
    pub fn with_domain(mut self, domain: Option<String>) -> Self {
        self.domain = domain;
        self
    }

    /// Sets the id.
    #[must_use]
    pub fn with_id(mut self, id: TenantId) -> Self {
        self.id = id;
        self
    }

    /// Checks every field; registries call this before writing.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the first bad field.
    pub fn validate(&self) -> Result<(), Error> {
        validate_name(self.name.clone(), "name")?;
        if let Some(domain) = &self.domain {
            validate_domain(domain)?;
        }
        if let Some(region) = &self.region {
            validate_region(region)?;
        }
        if self.isolation == Isolation::Schema && self.placement.schema.is_none() {
            return Err(Error::invalid(
                "placement.schema",
                "schema isolation needs a schema",
            ));
        }
        Ok(())
    }

    /// The tenant record this creates, in status `Pending`.
    pub fn into_tenant(self, now: OffsetDateTime) -> Tenant {
        Tenant {
            id: self.id,
            slug: self.slug,
            name: self.name,
            status: TenantStatus::Pending,
            status_reason: None,
            plan: self.plan,
            quota: None,
            isolation: self.isolation,
            placement: self.placement,
            region: self.region,
            domain: self.domain,
            created_at: now,
            updated_at: now,
        }
    }
}

/// A partial update of a tenant; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TenantUpdate {
    /// New display name.
    pub name: Option<String>,
    /// New plan.
    pub plan: Option<Plan>,
    /// New quota override (`Some(None)` clears it).
    pub quota: Option<Option<QuotaPolicy>>,
    /// New custom domain (`Some(None)` clears it).
    pub domain: Option<Option<String>>,
    /// New placement (after a move).
    pub placement: Option<Placement>,
}

impl TenantUpdate {
    /// Sets the name.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the plan.
    #[must_use]
    pub fn with_plan(mut self, plan: Plan) -> Self {
        self.plan = Some(plan);
        self
    }

    /// Sets or clears the quota override.
    #[must_use]
    pub fn with_quota(mut self, quota: Option<QuotaPolicy>) -> Self {
        self.quota = Some(quota);
        self
    }

    /// Sets or clears the custom domain.
    #[must_use]
    pub fn with_domain(mut self, domain: Option<String>) -> Self {
        self.domain = Some(domain);
        self
    }

    /// Sets the placement.
    #[must_use]
    pub fn with_placement(mut self, placement: Placement) -> Self {
        self.placement = Some(placement);
        self
    }

    /// Checks every field that is set.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the first bad field.
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(name) = &self.name {
            validate_name(name.clone(), "name")?;
        }
        if let Some(Some(quota)) = &self.quota {
            quota.validate()?;
        }
        if let Some(Some(domain)) = &self.domain {
            validate_domain(domain)?;
        }
        Ok(())
    }

    /// Applies the update to a tenant record.
    pub fn apply(self, tenant: &mut Tenant, now: OffsetDateTime) {
        if let Some(name) = self.name {
            tenant.name = name.trim().to_owned();
        }
        if let Some(plan) = self.plan {
            tenant.plan = plan;
        }
        if let Some(quota) = self.quota {
            tenant.quota = quota;
        }
        if let Some(domain) = self.domain {
            tenant.domain = domain.map(|d| d.to_ascii_lowercase());
        }
        if let Some(placement) = self.placement {
            tenant.placement = placement;
        }
        tenant.updated_at = now;
    }
}

/// Validates a display name: trimmed, 1 to 200 characters, no control characters.
///
/// # Errors
/// [`Error::InvalidInput`] on `field`.
pub fn validate_name(name: String, field: &'static str) -> Result<String, Error> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if trimmed.chars().count() > 200 {
        return Err(Error::invalid(field, "must be at most 200 characters"));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(trimmed.to_owned())
}

/// Validates a DNS host name used as a custom domain.
///
/// # Errors
/// [`Error::InvalidInput`] on field `domain`.
pub fn validate_domain(domain: &str) -> Result<(), Error> {
    let labels_ok = domain.split('.').all(|label| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    });
    if domain.len() > 253 || !domain.contains('.') || !labels_ok {
        return Err(Error::invalid("domain", "must be a valid host name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conventional_placement_follows_isolation() {
        let slug = TenantSlug::new("acme").unwrap_or_else(|e| panic!("{e}"));
        let db = Placement::conventional(&slug, Isolation::Database, ServerId::default(), "shared");
        assert_eq!(db.database, "tenant_acme");
        assert_eq!(db.schema, None);
        let sc = Placement::conventional(&slug, Isolation::Schema, ServerId::default(), "shared");
        assert_eq!(
            (sc.database.as_str(), sc.schema.as_deref()),
            ("shared", Some("tenant_acme"))
        );
    }

    #[test]
    fn roles_follow_the_recorded_placement() {
        let slug = TenantSlug::new("acme").unwrap_or_else(|e| panic!("{e}"));
        let naming = StorageNaming::new("crm").unwrap_or_else(|e| panic!("{e}"));
        let role = |isolation, placement: Placement| {
            let mut t = NewTenant::new(slug.clone(), "Acme", isolation)
                .unwrap_or_else(|e| panic!("{e}"))
                .into_tenant(OffsetDateTime::now_utc());
            t.placement = placement;
            t.role_name()
        };
        for isolation in [Isolation::Database, Isolation::Schema] {
            let new = naming.placement(&slug, isolation, ServerId::default(), "crm_shared");
            assert_eq!(role(isolation, new).as_deref(), Some("crm_t_acme"));
            let old = Placement::conventional(&slug, isolation, ServerId::default(), "s");
            assert_eq!(role(isolation, old).as_deref(), Some("tenant_acme"));
        }
        let by_hand = Placement {
            server: ServerId::default(),
            database: "somewhere".into(),
            schema: None,
        };
        assert_eq!(
            role(Isolation::Database, by_hand.clone()).as_deref(),
            Some("tenant_acme")
        );
        assert_eq!(role(Isolation::Shared, by_hand), None);
    }

    #[test]
    fn names_and_domains_are_validated() {
        assert!(validate_name("  ".into(), "name").is_err());
        assert!(validate_name("a\u{0}b".into(), "name").is_err());
        assert!(validate_name("x".repeat(201), "name").is_err());
        assert_eq!(
            validate_name(" Acme ".into(), "name").ok().as_deref(),
            Some("Acme")
        );
        assert!(validate_domain("app.acme.com").is_ok());
        assert!(validate_domain("acme").is_err());
        assert!(validate_domain("a..com").is_err());
        assert!(validate_domain("ex'; drop.com").is_err());
    }
}
