//! `InMemorySchedules`: recurring schedules for one process.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::domain::TenantId;
use crate::error::Result;
use crate::traits::{Schedule, ScheduleStore, ScheduleTick};

/// Each schedule by (tenant, name), with its next tick.
type Table = BTreeMap<(TenantId, String), (Schedule, OffsetDateTime)>;

/// Recurring schedules of one process, obeying the [`ScheduleStore`] contract: claims take one
/// mutex (never held across an await), so concurrent callers each get distinct ticks. Clones
/// share the same schedules. For several instances use a shared store (the Redis one).
#[derive(Debug, Clone, Default)]
pub struct InMemorySchedules {
    inner: Arc<Mutex<Table>>,
}

impl InMemorySchedules {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, Table> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The first `due + k * every` (k >= 1) after `now`.
fn next_after(
    due: OffsetDateTime,
    every: std::time::Duration,
    now: OffsetDateTime,
) -> OffsetDateTime {
    let every_ns = i128::try_from(every.as_nanos()).unwrap_or(i128::MAX).max(1);
    let behind = (now - due).whole_nanoseconds().max(0);
    let steps = behind / every_ns + 1;
    let ns = due
        .unix_timestamp_nanos()
        .saturating_add(steps.saturating_mul(every_ns));
    OffsetDateTime::from_unix_timestamp_nanos(ns).unwrap_or(now)
}

#[async_trait]
impl ScheduleStore for InMemorySchedules {
    async fn put(&self, schedule: Schedule) -> Result<()> {
        let first = OffsetDateTime::now_utc() + schedule.every;
        let key = (schedule.tenant_id, schedule.name.clone());
        self.state().insert(key, (schedule, first));
        Ok(())
    }

    async fn remove(&self, tenant: TenantId, name: &str) -> Result<bool> {
        Ok(self.state().remove(&(tenant, name.to_owned())).is_some())
    }

    async fn list(&self, tenant: TenantId) -> Result<Vec<Schedule>> {
        Ok(self
            .state()
            .range((tenant, String::new())..)
            .take_while(|((t, _), _)| *t == tenant)
            .map(|(_, (s, _))| s.clone())
            .collect())
    }

    async fn claim_due(&self, limit: usize) -> Result<Vec<ScheduleTick>> {
        let now = OffsetDateTime::now_utc();
        let mut state = self.state();
        let mut ticks = Vec::new();
        for (schedule, next) in state.values_mut() {
            if ticks.len() >= limit {
                break;
            }
            if *next <= now {
                ticks.push(ScheduleTick::new(schedule.clone(), *next));
                *next = next_after(*next, schedule.every, now);
            }
        }
        Ok(ticks)
    }
}
