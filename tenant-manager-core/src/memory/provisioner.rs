//! `InMemoryProvisioner`: creates each tenant's space in an [`InMemoryTenantData`].

use std::sync::Arc;

use async_trait::async_trait;
use dashmap::DashMap;

use super::InMemoryTenantData;
use crate::domain::{Tenant, TenantId};
use crate::error::{Error, Result};
use crate::traits::{ProvisionReport, ProvisionStep, Provisioner, ProvisionerCapabilities};

/// Provisions tenants into a shared [`InMemoryTenantData`], for every isolation mode.
///
/// Steps are recorded per tenant, `Reserved` to `Active`; a rerun runs only the steps not yet
/// done. In memory there is no schema to migrate and nothing to seed: `StorageCreated`
/// creates the tenant's space, and the other steps are recorded so reports match those of
/// the database adapters. Isolation modes behave alike here (each tenant has its own space);
/// [`with_capabilities`](Self::with_capabilities) can narrow them, for instance to mirror a
/// production deployment.
///
/// Concurrency: one lock per tenant (the tenant's entry in a sharded map), held only for the
/// synchronous steps, so concurrent calls for one tenant never both run a step.
#[derive(Debug)]
pub struct InMemoryProvisioner {
    data: Arc<InMemoryTenantData>,
    /// The last step done per tenant (`None` while none is).
    done: DashMap<TenantId, Option<ProvisionStep>>,
    capabilities: ProvisionerCapabilities,
}

impl InMemoryProvisioner {
    /// A provisioner creating tenant spaces in `data`, supporting every isolation mode.
    pub fn new(data: Arc<InMemoryTenantData>) -> Self {
        Self {
            data,
            done: DashMap::new(),
            capabilities: ProvisionerCapabilities::ALL,
        }
    }

    /// Restricts the isolation modes this provisioner accepts.
    #[must_use]
    pub fn with_capabilities(mut self, capabilities: ProvisionerCapabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    /// The tenant data this provisioner creates spaces in.
    pub fn data(&self) -> &Arc<InMemoryTenantData> {
        &self.data
    }

    fn run_step(&self, step: ProvisionStep, tenant: &Tenant) {
        if step == ProvisionStep::StorageCreated {
            self.data.create_space(tenant.id);
        }
        tracing::debug!(tenant = %tenant.id, step = step.as_str(), "provision step done");
    }
}

#[async_trait]
impl Provisioner for InMemoryProvisioner {
    async fn provision(&self, tenant: &Tenant) -> Result<ProvisionReport> {
        if !self.capabilities.supports(tenant.isolation) {
            return Err(Error::invalid(
                "isolation",
                format!("{} isolation is not supported here", tenant.isolation),
            ));
        }
        let mut steps_run = Vec::new();
        // The entry guard is the per-tenant lock; every step below is synchronous.
        let mut last_done = self.done.entry(tenant.id).or_insert(None);
        for step in ProvisionStep::ALL {
            if last_done.is_some_and(|done| step <= done) {
                continue;
            }
            self.run_step(step, tenant);
            *last_done = Some(step);
            steps_run.push(step);
        }
        drop(last_done);
        Ok(ProvisionReport::new(steps_run, false))
    }

    async fn deprovision(&self, tenant: &Tenant) -> Result<()> {
        // Under the tenant's entry lock, so a concurrent provision cannot interleave.
        match self.done.entry(tenant.id) {
            dashmap::Entry::Occupied(o) => {
                self.data.drop_space(tenant.id);
                o.remove();
            }
            dashmap::Entry::Vacant(_) => {
                self.data.drop_space(tenant.id);
            }
        }
        Ok(())
    }

    async fn is_provisioned(&self, tenant: &Tenant) -> Result<bool> {
        let active = self
            .done
            .get(&tenant.id)
            .is_some_and(|step| *step == Some(ProvisionStep::Active));
        Ok(active && self.data.contains(tenant.id))
    }

    fn capabilities(&self) -> ProvisionerCapabilities {
        self.capabilities
    }
}
