//! Cursor pagination of tenant listings.

use serde::{Deserialize, Serialize};

use super::{Isolation, Plan, TenantId, TenantStatus};
use crate::error::Error;

/// Largest page a listing returns.
pub const MAX_PAGE_SIZE: u32 = 500;

/// A filter and a cursor for listing tenants, ordered by id (creation order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TenantQuery {
    /// Only tenants in this status.
    pub status: Option<TenantStatus>,
    /// Only tenants on this plan.
    pub plan: Option<Plan>,
    /// Only tenants with this isolation.
    pub isolation: Option<Isolation>,
    /// Start after this tenant id (the previous page's `next`).
    pub after: Option<TenantId>,
    /// Page size, 1 to [`MAX_PAGE_SIZE`].
    pub limit: u32,
}

impl Default for TenantQuery {
    fn default() -> Self {
        Self {
            status: None,
            plan: None,
            isolation: None,
            after: None,
            limit: 50,
        }
    }
}

impl TenantQuery {
    /// Filters by status.
    #[must_use]
    pub fn with_status(mut self, status: Option<TenantStatus>) -> Self {
        self.status = status;
        self
    }

    /// Filters by plan.
    #[must_use]
    pub fn with_plan(mut self, plan: Option<Plan>) -> Self {
        self.plan = plan;
        self
    }

    /// Filters by isolation.
    #[must_use]
    pub fn with_isolation(mut self, isolation: Option<Isolation>) -> Self {
        self.isolation = isolation;
        self
    }

    /// Continues after a tenant id.
    #[must_use]
    pub fn with_after(mut self, after: Option<TenantId>) -> Self {
        self.after = after;
        self
    }

    /// Sets the page size.
    #[must_use]
    pub fn with_limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }

    /// Checks the page size.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `limit`.
    pub fn validate(&self) -> Result<(), Error> {
        if self.limit == 0 || self.limit > MAX_PAGE_SIZE {
            return Err(Error::invalid("limit", "must be 1 to 500"));
        }
        Ok(())
    }
}

/// One page of results and the cursor of the next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items, in id order.
    pub items: Vec<T>,
    /// Pass as `after` to get the next page; `None` on the last page.
    pub next: Option<TenantId>,
}
