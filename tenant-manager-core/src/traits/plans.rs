//! `PlanStore`: where plans and their quota policies are kept.

use async_trait::async_trait;

use crate::domain::{Plan, PlanCatalog, QuotaPolicy};
use crate::error::Result;

/// Keeps the quota policy of each plan (the registry's `tm_plans`, or memory).
///
/// # Contract
/// - `put_plan` validates the policy and creates or replaces it; the next `list_plans` on any
///   handle sharing the backend returns it.
/// - `list_plans` is ordered by plan name.
///
/// # Errors
/// `InvalidInput` naming the policy field out of range; `Unavailable` when the backend cannot
/// be reached; `Internal` for a stored policy that no longer parses.
#[async_trait]
pub trait PlanStore: std::fmt::Debug + Send + Sync + 'static {
    /// Creates or replaces a plan's policy.
    async fn put_plan(&self, plan: &Plan, policy: &QuotaPolicy) -> Result<()>;

    /// Deletes a plan's policy (its tenants get the default); returns whether it existed.
    async fn delete_plan(&self, plan: &Plan) -> Result<bool>;

    /// Every stored plan, ordered by name.
    async fn list_plans(&self) -> Result<Vec<(Plan, QuotaPolicy)>>;

    /// The stored plans as a catalog whose other plans get `default`.
    async fn load_catalog(&self, default: QuotaPolicy) -> Result<PlanCatalog> {
        let plans = self.list_plans().await?;
        Ok(plans
            .into_iter()
            .fold(PlanCatalog::new(default), |catalog, (plan, policy)| {
                catalog.with_plan(plan, policy)
            }))
    }
}
