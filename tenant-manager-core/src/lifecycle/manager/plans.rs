//! Moving a tenant to another plan.

use super::TenantManager;
use crate::domain::{EventKind, Plan, Tenant, TenantId, TenantStatus, TenantUpdate};
use crate::error::{Entity, Error, Result};

impl TenantManager {
    /// Whether `plan` can be given to a tenant: it has a policy in the plan book, or it is the
    /// configured default plan.
    pub fn knows_plan(&self, plan: &Plan) -> bool {
        *plan == self.inner.config.default_plan || self.inner.plans.current().contains(plan)
    }

    /// Moves a tenant to `plan`. Its quota (unless it has an override) and rate follow from
    /// the next request on, on every instance: the tenant's cached record is invalidated
    /// everywhere, as on a suspension.
    ///
    /// # Errors
    /// `InvalidInput` on `plan` when the plan book does not know the plan; `NotFound`;
    /// `Conflict` on `status` for a deleting or deleted tenant; `Unavailable`.
    pub async fn change_plan(&self, id: TenantId, plan: Plan) -> Result<Tenant> {
        if !self.knows_plan(&plan) {
            return Err(Error::invalid(
                "plan",
                format!("no plan named {plan} exists"),
            ));
        }
        let update = TenantUpdate::default().with_plan(plan);
        let tenant = self.update_live(id, update, "plan").await?;
        let details = serde_json::json!({ "plan": tenant.plan });
        self.inner
            .ops
            .emit(
                EventKind::PlanChanged,
                &tenant,
                self.actor.clone(),
                Some(details),
            )
            .await;
        Ok(tenant)
    }

    /// Applies `update` to a tenant that is not being deleted, then clears its cached record
    /// on every instance. `what` names the field in the conflict error.
    pub(super) async fn update_live(
        &self,
        id: TenantId,
        update: TenantUpdate,
        what: &str,
    ) -> Result<Tenant> {
        let current = self.inner.ops.registry.get_tenant(id).await?;
        if matches!(
            current.status,
            TenantStatus::Deleting | TenantStatus::Deleted
        ) {
            return Err(Error::conflict(
                Entity::Tenant,
                "status",
                format!(
                    "tenant {id} is {}: its {what} cannot change",
                    current.status
                ),
            ));
        }
        let tenant = self.inner.ops.registry.update_tenant(id, update).await?;
        self.inner.ops.invalidate(id).await?;
        Ok(tenant)
    }
}
