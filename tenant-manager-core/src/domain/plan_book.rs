//! [`PlanBook`]: the plan catalog every part of a process reads, replaced as a whole when the
//! plans change.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use super::plan::{Plan, PlanCatalog, QuotaPolicy};

/// A shared, replaceable [`PlanCatalog`]: clones see the same catalog, and a
/// [`replace`](PlanBook::replace) is seen by every clone on its next read.
///
/// Hosts load it from a plan store at start and replace it when plans change (after an edit, or
/// on a refresh interval so edits made by other instances arrive); the manager and the rate
/// limiter read it on every request, so a plan edit applies on the next request.
#[derive(Clone, Default)]
pub struct PlanBook {
    current: Arc<RwLock<Arc<PlanCatalog>>>,
}

impl PlanBook {
    /// A book holding `catalog`.
    pub fn new(catalog: PlanCatalog) -> Self {
        Self {
            current: Arc::new(RwLock::new(Arc::new(catalog))),
        }
    }

    /// The catalog as it is now.
    pub fn current(&self) -> Arc<PlanCatalog> {
        // A writer only swaps an `Arc`: a poisoned lock still holds a whole catalog.
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the catalog for every clone.
    pub fn replace(&self, catalog: PlanCatalog) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(catalog);
    }

    /// The policy of a plan in the current catalog.
    pub fn policy(&self, plan: &Plan) -> QuotaPolicy {
        self.current().policy(plan).clone()
    }
}

impl From<PlanCatalog> for PlanBook {
    fn from(catalog: PlanCatalog) -> Self {
        Self::new(catalog)
    }
}

impl fmt::Debug for PlanBook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PlanBook").field(&self.current()).finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_replacement_is_seen_by_every_clone() {
        let book = PlanBook::new(PlanCatalog::default());
        let other = book.clone();
        let pro = Plan::new("pro").unwrap();
        let policy = QuotaPolicy {
            max_users: 7,
            ..QuotaPolicy::default()
        };
        assert_eq!(other.policy(&pro), QuotaPolicy::default());
        book.replace(PlanCatalog::default().with_plan(pro.clone(), policy.clone()));
        assert_eq!(other.policy(&pro), policy);
        assert!(other.current().contains(&pro));
    }
}
