//! Recurring host jobs: schedules per tenant in a shared [`ScheduleStore`], fired by the
//! workers.

use std::sync::Arc;
use std::time::Duration;

use super::jobs::HostJobs;
use crate::domain::{TenantId, TenantStatus};
use crate::error::{Error, Result};
use crate::traits::{Schedule, ScheduleStore};

/// Most ticks one [`HostJobs::fire_due`] claims.
const TICKS_PER_FIRE: usize = 100;

impl<C: Send + 'static> HostJobs<C> {
    fn store(&self) -> Result<&Arc<dyn ScheduleStore>> {
        self.schedules.as_ref().ok_or_else(|| {
            Error::internal("host jobs were built without a schedule store (with_schedules)")
        })
    }

    /// Runs a job of `kind` for `tenant` every `every`, from one interval from now, under
    /// `name` (replacing a schedule of that name). The schedule lives in the shared store:
    /// however many workers fire it, each tick enqueues one job.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `name`, `kind` (also when it is not registered) or `every`;
    /// the tenant errors of [`enqueue`](HostJobs::enqueue); [`Error::Internal`] without a
    /// schedule store.
    pub async fn schedule(
        &self,
        tenant: TenantId,
        name: &str,
        kind: &str,
        payload: serde_json::Value,
        every: Duration,
    ) -> Result<Schedule> {
        let store = self.store()?;
        let schedule = Schedule::new(tenant, name, kind, payload, every)?;
        self.check(tenant, kind).await?;
        store.put(schedule.clone()).await?;
        Ok(schedule)
    }

    /// Stops the schedule `name` of `tenant`; `false` when there was none.
    ///
    /// # Errors
    /// The store's errors; [`Error::Internal`] without a schedule store.
    pub async fn unschedule(&self, tenant: TenantId, name: &str) -> Result<bool> {
        self.store()?.remove(tenant, name).await
    }

    /// The schedules of `tenant`.
    ///
    /// # Errors
    /// The store's errors; [`Error::Internal`] without a schedule store.
    pub async fn schedules(&self, tenant: TenantId) -> Result<Vec<Schedule>> {
        self.store()?.list(tenant).await
    }

    /// Claims the ticks that are due and enqueues one job for each; answers how many jobs it
    /// enqueued. Workers call it on every poll; ticks of suspended (or not yet active)
    /// tenants are skipped, and the schedules of deleted tenants removed. Without a schedule
    /// store it does nothing.
    ///
    /// # Errors
    /// The store's, registry's or queue's errors (a tick claimed but not enqueued is lost:
    /// schedules fire at most once per tick).
    pub async fn fire_due(&self) -> Result<usize> {
        let Some(store) = self.schedules.as_ref() else {
            return Ok(0);
        };
        let mut fired = 0;
        for tick in store.claim_due(TICKS_PER_FIRE).await? {
            let schedule = &tick.schedule;
            let status = match self.registry.get_tenant(schedule.tenant_id).await {
                Ok(tenant) => Some(tenant.status),
                Err(Error::NotFound { .. }) => None,
                Err(e) => return Err(e),
            };
            match status {
                Some(TenantStatus::Active) => {}
                None | Some(TenantStatus::Deleting | TenantStatus::Deleted) => {
                    tracing::info!(tenant_id = %schedule.tenant_id, schedule = %schedule.name, "tenant gone: schedule removed");
                    store.remove(schedule.tenant_id, &schedule.name).await?;
                    continue;
                }
                Some(status) => {
                    tracing::debug!(tenant_id = %schedule.tenant_id, schedule = %schedule.name, status = %status.as_str(), "tenant not active: tick skipped");
                    continue;
                }
            }
            if !self.is_registered(&schedule.kind) {
                tracing::warn!(kind = %schedule.kind, schedule = %schedule.name, "no handler for a scheduled kind: tick skipped");
                continue;
            }
            self.queue.enqueue(schedule.job()?).await?;
            fired += 1;
        }
        Ok(fired)
    }
}
