//! What a sign-up carries: the request as the form sent it, the same request once every field
//! passed validation, and what registration answers. Registration and its reclaim of a failed
//! sign-up both build on these.

use serde::{Deserialize, Deserializer};

use crate::auth::IssuedToken;
use crate::domain::{Email, Isolation, Plan, Secret, ServerId, Tenant, TenantSlug, User};
use crate::error::{Entity, Error};

/// A request to register an organisation: the raw fields of a sign-up form.
///
/// Every field is validated by [`TenantManager::register_organization`](super::TenantManager::register_organization), and errors name the
/// field as it is spelled here. Deserializes from the JSON of the registration endpoint.
#[derive(Debug, Clone, Deserialize)]
#[non_exhaustive]
pub struct Registration {
    /// Display name of the organisation (1 to 200 characters).
    pub organization_name: String,
    /// E-mail of the owner; unique across the system.
    pub admin_email: String,
    /// Password of the owner, checked against the password policy.
    #[serde(deserialize_with = "secret")]
    pub admin_password: Secret,
    /// Slug; derived from the organisation name when absent.
    #[serde(default)]
    pub slug: Option<String>,
    /// Isolation (`database`, `schema`, `shared`); the configured default when absent.
    #[serde(default)]
    pub isolation: Option<String>,
    /// Plan; the configured default when absent.
    #[serde(default)]
    pub plan: Option<String>,
    /// Region the tenant is pinned to; the manager's configured region when absent. With a
    /// server list that declares regions, placement keeps the tenant in it.
    #[serde(default)]
    pub region: Option<String>,
    /// The database server an operator places the tenant on, instead of the placement
    /// policy's choice. Never read from JSON: an anonymous sign-up does not choose it.
    #[serde(skip)]
    pub server: Option<String>,
}

fn secret<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Secret, D::Error> {
    String::deserialize(d).map(Secret::new)
}

impl Registration {
    /// A registration with the three required fields.
    pub fn new(
        organization_name: impl Into<String>,
        admin_email: impl Into<String>,
        admin_password: impl Into<Secret>,
    ) -> Self {
        Self {
            organization_name: organization_name.into(),
            admin_email: admin_email.into(),
            admin_password: admin_password.into(),
            slug: None,
            isolation: None,
            plan: None,
            region: None,
            server: None,
        }
    }

    /// Chooses the slug.
    #[must_use]
    pub fn with_slug(mut self, slug: impl Into<String>) -> Self {
        self.slug = Some(slug.into());
        self
    }

    /// Chooses the isolation by name (`database`, `schema`, `shared`).
    #[must_use]
    pub fn with_isolation(mut self, isolation: impl Into<String>) -> Self {
        self.isolation = Some(isolation.into());
        self
    }

    /// Chooses the plan by name.
    #[must_use]
    pub fn with_plan(mut self, plan: impl Into<String>) -> Self {
        self.plan = Some(plan.into());
        self
    }

    /// Pins the tenant to a region.
    #[must_use]
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Places the tenant on this database server (an operator's override of the policy).
    #[must_use]
    pub fn with_server(mut self, server: impl Into<String>) -> Self {
        self.server = Some(server.into());
        self
    }
}

/// What registration created: the tenant (in its status after provisioning, or
/// `Provisioning` when queued), its owner, and an access token for the owner.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Registered {
    /// The tenant.
    pub tenant: Tenant,
    /// The owner.
    pub user: User,
    /// An access token for the owner.
    pub token: IssuedToken,
}

/// A registration whose every field passed validation.
pub(super) struct Valid {
    pub(super) name: String,
    pub(super) email: Email,
    pub(super) slug: Option<TenantSlug>,
    pub(super) isolation: Isolation,
    pub(super) plan: Plan,
    pub(super) region: Option<String>,
    pub(super) server: Option<ServerId>,
}

/// The `Conflict` of a registered e-mail.
pub(super) fn email_taken() -> Error {
    Error::conflict(
        Entity::User,
        "email",
        "this e-mail address is already registered",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrations_deserialize_from_the_endpoint_json()
    -> std::result::Result<(), serde_json::Error> {
        let r: Registration = serde_json::from_str(
            r#"{"organization_name":"Test","admin_email":"test@test.com","admin_password":"Test123!"}"#,
        )?;
        assert_eq!(r.admin_password.expose(), "Test123!");
        assert!(r.slug.is_none() && r.isolation.is_none());
        assert!(!format!("{r:?}").contains("Test123!"));
        Ok(())
    }
}
