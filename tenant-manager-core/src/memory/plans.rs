//! `InMemoryPlanStore`: plans and their policies for one process; the storage meter of the
//! in-memory tenant data.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

use super::InMemoryTenantData;
use crate::domain::{Plan, QuotaPolicy, Tenant};
use crate::error::Result;
use crate::traits::{PlanStore, StorageMeter};

/// The bytes of the tenant's records (ids plus serialized JSON), as
/// [`InMemoryTenantData::size_bytes`] counts them.
#[async_trait]
impl StorageMeter for InMemoryTenantData {
    async fn measure(&self, tenant: &Tenant) -> Result<u64> {
        self.size_bytes(tenant.id)
    }
}

/// [`PlanStore`] in a map; clones share it.
#[derive(Debug, Clone, Default)]
pub struct InMemoryPlanStore {
    plans: Arc<Mutex<HashMap<Plan, QuotaPolicy>>>,
}

impl InMemoryPlanStore {
    fn with_plans<T>(&self, f: impl FnOnce(&mut HashMap<Plan, QuotaPolicy>) -> T) -> T {
        // Every change is one map operation: a poisoned lock still holds a whole map.
        f(&mut self.plans.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

#[async_trait]
impl PlanStore for InMemoryPlanStore {
    async fn put_plan(&self, plan: &Plan, policy: &QuotaPolicy) -> Result<()> {
        policy.validate()?;
        self.with_plans(|plans| plans.insert(plan.clone(), policy.clone()));
        Ok(())
    }

    async fn delete_plan(&self, plan: &Plan) -> Result<bool> {
        Ok(self.with_plans(|plans| plans.remove(plan).is_some()))
    }

    async fn list_plans(&self) -> Result<Vec<(Plan, QuotaPolicy)>> {
        let mut list: Vec<_> = self.with_plans(|plans| {
            plans
                .iter()
                .map(|(plan, policy)| (plan.clone(), policy.clone()))
                .collect()
        });
        list.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::domain::DbLimits;

    #[tokio::test]
    async fn plans_are_put_listed_in_order_and_deleted() {
        let store = InMemoryPlanStore::default();
        let (pro, basic) = (Plan::new("pro").unwrap(), Plan::new("basic").unwrap());
        let policy = QuotaPolicy {
            max_storage_bytes: 5,
            ..QuotaPolicy::default()
        };
        store.put_plan(&pro, &policy).await.unwrap();
        store
            .put_plan(&basic, &QuotaPolicy::default())
            .await
            .unwrap();
        let names: Vec<_> = store
            .list_plans()
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(names, [basic.clone(), pro.clone()]);
        let catalog = store.load_catalog(QuotaPolicy::default()).await.unwrap();
        assert_eq!(catalog.policy(&pro).max_storage_bytes, 5);
        assert!(store.delete_plan(&pro).await.unwrap());
        assert!(!store.delete_plan(&pro).await.unwrap());

        let bad = QuotaPolicy {
            db: DbLimits {
                work_mem_kb: Some(1),
                ..DbLimits::default()
            },
            ..QuotaPolicy::default()
        };
        let err = store.put_plan(&pro, &bad).await.unwrap_err();
        assert_eq!(err.field(), Some("db.work_mem_kb"));
    }
}
