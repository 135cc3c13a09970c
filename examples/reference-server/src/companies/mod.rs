//! The tenant-scoped CRM resource of the API: companies, kept in the tenant's own storage.

mod memory;
mod postgres;

use serde::{Deserialize, Deserializer, Serialize};
use tenant_manager::{Result, Tenant, async_trait, validate_domain, validate_name};
use time::OffsetDateTime;
use uuid::Uuid;

pub(crate) use self::memory::MemoryCompanies;
pub(crate) use self::postgres::PgCompanies;

/// Largest page of companies.
pub(crate) const MAX_PAGE: u32 = 100;

/// A company of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct Company {
    /// Identity (UUID v7: ordered by creation).
    pub(crate) id: Uuid,
    /// Name, 1 to 200 characters.
    pub(crate) name: String,
    /// Web domain, such as `acme.com`.
    pub(crate) domain: Option<String>,
    /// Creation time (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) created_at: OffsetDateTime,
}

/// Body of `POST /api/companies`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewCompany {
    /// Name, 1 to 200 characters.
    pub(crate) name: String,
    /// Web domain.
    #[serde(default)]
    pub(crate) domain: Option<String>,
}

/// Body of `PATCH /api/companies/{id}`: absent fields are kept, `"domain": null` clears it.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CompanyPatch {
    /// New name.
    #[serde(default)]
    pub(crate) name: Option<String>,
    /// New domain, or `null` to clear it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub(crate) domain: Option<Option<String>>,
}

/// `Some(value)` for a field that is present, even when it is `null`.
fn present<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// One page of companies in creation order.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct CompanyPage {
    /// The companies.
    pub(crate) items: Vec<Company>,
    /// Pass as `after` for the next page; absent on the last page.
    pub(crate) next: Option<Uuid>,
}

fn normalise_domain(domain: Option<String>) -> Result<Option<String>> {
    match domain.map(|d| d.trim().to_ascii_lowercase()) {
        Some(d) => {
            validate_domain(&d)?;
            Ok(Some(d))
        }
        None => Ok(None),
    }
}

impl NewCompany {
    /// A validated company with a fresh id.
    ///
    /// # Errors
    /// `InvalidInput` on `name` or `domain`.
    pub(crate) fn into_company(self, now: OffsetDateTime) -> Result<Company> {
        Ok(Company {
            id: Uuid::now_v7(),
            name: validate_name(self.name, "name")?,
            domain: normalise_domain(self.domain)?,
            created_at: now,
        })
    }
}

impl CompanyPatch {
    /// The patch with its values validated and normalised (as on creation).
    ///
    /// # Errors
    /// `InvalidInput` on `name` or `domain`.
    pub(crate) fn validated(self) -> Result<Self> {
        Ok(Self {
            name: self.name.map(|n| validate_name(n, "name")).transpose()?,
            domain: self.domain.map(normalise_domain).transpose()?,
        })
    }

    /// Applies the validated patch.
    ///
    /// # Errors
    /// `InvalidInput` on `name` or `domain`.
    pub(crate) fn apply(self, company: &mut Company) -> Result<()> {
        let patch = self.validated()?;
        if let Some(name) = patch.name {
            company.name = name;
        }
        if let Some(domain) = patch.domain {
            company.domain = domain;
        }
        Ok(())
    }
}

/// Checks a page size.
///
/// # Errors
/// `InvalidInput` on `limit` outside 1 to [`MAX_PAGE`].
pub(crate) fn check_limit(limit: u32) -> Result<()> {
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(())
    } else {
        Err(tenant_manager::Error::invalid("limit", "must be 1 to 100"))
    }
}

/// The error of a company that is not in the tenant's storage.
pub(crate) fn company_not_found(id: Uuid) -> tenant_manager::Error {
    tenant_manager::Error::not_found(tenant_manager::Entity::Record, format!("company {id}"))
}

/// Companies of each tenant, kept in that tenant's storage.
///
/// # Contract
/// - Every call reaches only `tenant`'s own storage: an id of another tenant's company is
///   `NotFound`, never its data.
/// - Listings are in id (creation) order and never skip or repeat across pages.
///
/// # Errors
/// `NotFound` (entity `Record`) for an unknown id; `InvalidInput` for a bad page size;
/// the storage's `Unavailable` and `PoolExhausted`.
#[async_trait]
pub(crate) trait CompanyStore: std::fmt::Debug + Send + Sync + 'static {
    /// Up to `limit` companies after `after`.
    async fn list(&self, tenant: &Tenant, after: Option<Uuid>, limit: u32) -> Result<CompanyPage>;

    /// Stores a new company.
    async fn create(&self, tenant: &Tenant, company: Company) -> Result<Company>;

    /// One company.
    async fn get(&self, tenant: &Tenant, id: Uuid) -> Result<Company>;

    /// Applies a patch.
    async fn update(&self, tenant: &Tenant, id: Uuid, patch: CompanyPatch) -> Result<Company>;

    /// Deletes a company.
    async fn delete(&self, tenant: &Tenant, id: Uuid) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_distinguish_absent_from_null() {
        let p: CompanyPatch = serde_json::from_str(r#"{"name":"X"}"#).unwrap_or_default();
        assert_eq!(p.domain, None);
        let p: CompanyPatch = serde_json::from_str(r#"{"domain":null}"#).unwrap_or_default();
        assert_eq!(p.domain, Some(None));
        assert!(serde_json::from_str::<CompanyPatch>(r#"{"tenant_id":"x"}"#).is_err());
    }

    #[test]
    fn new_companies_are_validated() {
        let now = OffsetDateTime::now_utc();
        let ok = NewCompany {
            name: " Acme ".into(),
            domain: Some("Acme.COM".into()),
        }
        .into_company(now);
        let ok = ok.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (ok.name.as_str(), ok.domain.as_deref()),
            ("Acme", Some("acme.com"))
        );
        let bad = NewCompany {
            name: "".into(),
            domain: None,
        }
        .into_company(now);
        assert_eq!(
            bad.err()
                .and_then(|e| e.field().map(str::to_owned))
                .as_deref(),
            Some("name")
        );
        let bad = NewCompany {
            name: "A".into(),
            domain: Some("not a domain".into()),
        }
        .into_company(now);
        assert_eq!(
            bad.err()
                .and_then(|e| e.field().map(str::to_owned))
                .as_deref(),
            Some("domain")
        );
    }
}
