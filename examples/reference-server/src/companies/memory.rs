//! Companies in embedded mode: a collection of the tenant's in-memory data space.

use std::sync::Arc;

use tenant_manager::memory::InMemoryTenantData;
use tenant_manager::{Entity, Error, Result, Tenant, async_trait};
use uuid::Uuid;

use super::{Company, CompanyPage, CompanyPatch, CompanyStore, check_limit, company_not_found};

const COLLECTION: &str = "companies";

/// [`CompanyStore`] over [`InMemoryTenantData`].
#[derive(Debug, Clone)]
pub(crate) struct MemoryCompanies {
    data: Arc<InMemoryTenantData>,
}

impl MemoryCompanies {
    pub(crate) fn new(data: Arc<InMemoryTenantData>) -> Self {
        Self { data }
    }
}

fn decode(value: serde_json::Value) -> Result<Company> {
    serde_json::from_value(value)
        .map_err(|e| Error::internal_with("stored company does not decode", e))
}

fn encode(company: &Company) -> Result<serde_json::Value> {
    serde_json::to_value(company).map_err(|e| Error::internal_with("company does not encode", e))
}

#[async_trait]
impl CompanyStore for MemoryCompanies {
    async fn list(&self, tenant: &Tenant, after: Option<Uuid>, limit: u32) -> Result<CompanyPage> {
        check_limit(limit)?;
        let after = after.map(|id| id.to_string());
        let wanted = usize::try_from(limit).unwrap_or(1);
        let records = self
            .data
            .list(tenant.id, COLLECTION, after.as_deref(), wanted + 1)?;
        let fetched = records
            .into_iter()
            .map(|r| decode(r.value))
            .collect::<Result<Vec<_>>>()?;
        let (items, next) = crate::paging::cut(fetched, limit, |c| c.id);
        Ok(CompanyPage { items, next })
    }

    async fn create(&self, tenant: &Tenant, company: Company) -> Result<Company> {
        self.data.insert(
            tenant.id,
            COLLECTION,
            &company.id.to_string(),
            encode(&company)?,
        )?;
        Ok(company)
    }

    async fn get(&self, tenant: &Tenant, id: Uuid) -> Result<Company> {
        match self.data.get(tenant.id, COLLECTION, &id.to_string()) {
            Ok(value) => decode(value),
            Err(Error::NotFound {
                entity: Entity::Record,
                ..
            }) => Err(company_not_found(id)),
            Err(e) => Err(e),
        }
    }

    async fn update(&self, tenant: &Tenant, id: Uuid, patch: CompanyPatch) -> Result<Company> {
        let mut company = self.get(tenant, id).await?;
        patch.apply(&mut company)?;
        match self
            .data
            .update(tenant.id, COLLECTION, &id.to_string(), encode(&company)?)
        {
            Ok(()) => Ok(company),
            Err(Error::NotFound {
                entity: Entity::Record,
                ..
            }) => Err(company_not_found(id)),
            Err(e) => Err(e),
        }
    }

    async fn delete(&self, tenant: &Tenant, id: Uuid) -> Result<()> {
        if self.data.delete(tenant.id, COLLECTION, &id.to_string())? {
            Ok(())
        } else {
            Err(company_not_found(id))
        }
    }
}
