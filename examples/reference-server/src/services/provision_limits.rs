//! [`LimitedProvisioner`]: the provisioner that writes a new tenant's plan limits on its login
//! role as soon as its storage is ready, instead of at the next scheduled storage pass.

use std::sync::Arc;

use tenant_manager::postgres::usage::PgRoleLimits;
use tenant_manager::{
    PlanBook, ProvisionReport, Provisioner, ProvisionerCapabilities, Result, Tenant, async_trait,
};

/// Provisions with `inner`, then applies the tenant's plan session limits
/// ([`DbLimits`](tenant_manager::DbLimits)) on its login role (database isolation; schema and
/// shared tenants get theirs at every checkout from the pool's connector). A failure to apply
/// them is logged and left to the scheduled pass: the storage is ready either way.
#[derive(Debug)]
pub(crate) struct LimitedProvisioner {
    inner: Arc<dyn Provisioner>,
    limits: PgRoleLimits,
    plans: PlanBook,
}

impl LimitedProvisioner {
    /// `inner`, followed by `limits` from the tenant's quota override or its plan in `plans`.
    pub(crate) fn new(inner: Arc<dyn Provisioner>, limits: PgRoleLimits, plans: PlanBook) -> Self {
        Self {
            inner,
            limits,
            plans,
        }
    }
}

#[async_trait]
impl Provisioner for LimitedProvisioner {
    async fn provision(&self, tenant: &Tenant) -> Result<ProvisionReport> {
        let report = self.inner.provision(tenant).await?;
        let policy = tenant
            .quota
            .clone()
            .unwrap_or_else(|| self.plans.policy(&tenant.plan));
        if let Err(error) = self.limits.apply(tenant, &policy.db).await {
            tracing::warn!(tenant = %tenant.id, %error, "plan limits on the new role failed");
        }
        Ok(report)
    }

    async fn deprovision(&self, tenant: &Tenant) -> Result<()> {
        self.inner.deprovision(tenant).await
    }

    async fn is_provisioned(&self, tenant: &Tenant) -> Result<bool> {
        self.inner.is_provisioned(tenant).await
    }

    fn capabilities(&self) -> ProvisionerCapabilities {
        self.inner.capabilities()
    }
}
