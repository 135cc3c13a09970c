//! `ScheduleStore`: recurring jobs per tenant, kept in a backend shared by every instance, so a
//! schedule fires once per tick however many instances run its scheduler.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::jobs::NewJob;
use crate::domain::TenantId;
use crate::error::{Error, Result};

/// Shortest interval of a recurring schedule.
pub const MIN_SCHEDULE_INTERVAL: Duration = Duration::from_millis(10);
/// Longest interval of a recurring schedule: 366 days.
pub const MAX_SCHEDULE_INTERVAL: Duration = Duration::from_secs(366 * 86_400);

/// A recurring job of one tenant: a job of `kind` with `payload`, every `every`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Schedule {
    /// The tenant the jobs run for.
    pub tenant_id: TenantId,
    /// Name, unique per tenant (1 to 64 of `[a-z0-9_.]`).
    pub name: String,
    /// Kind of the jobs it enqueues.
    pub kind: String,
    /// Payload of the jobs it enqueues.
    pub payload: serde_json::Value,
    /// Interval between two ticks.
    pub every: Duration,
}

impl Schedule {
    /// A schedule, validated.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `name` or `kind` (1 to 64 of `[a-z0-9_.]`) or `every`
    /// ([`MIN_SCHEDULE_INTERVAL`] to [`MAX_SCHEDULE_INTERVAL`]).
    pub fn new(
        tenant_id: TenantId,
        name: &str,
        kind: &str,
        payload: serde_json::Value,
        every: Duration,
    ) -> Result<Self> {
        NewJob::new(name, None, serde_json::Value::Null)
            .map_err(|_| Error::invalid("name", "must be 1 to 64 of [a-z0-9_.]"))?;
        NewJob::new(kind, None, serde_json::Value::Null)?;
        if !(MIN_SCHEDULE_INTERVAL..=MAX_SCHEDULE_INTERVAL).contains(&every) {
            return Err(Error::invalid("every", "must be 10 ms to 366 days"));
        }
        Ok(Self {
            tenant_id,
            name: name.to_owned(),
            kind: kind.to_owned(),
            payload,
            every,
        })
    }

    /// The job one tick enqueues.
    ///
    /// # Errors
    /// None for a schedule built with [`Schedule::new`].
    pub fn job(&self) -> Result<NewJob> {
        NewJob::new(&self.kind, Some(self.tenant_id), self.payload.clone())
    }
}

/// One tick of a schedule, claimed by one caller of [`ScheduleStore::claim_due`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ScheduleTick {
    /// The schedule.
    pub schedule: Schedule,
    /// The time the tick was due (ticks missed while nothing claimed are skipped: this is the
    /// latest due one).
    #[serde(with = "time::serde::rfc3339")]
    pub due_at: OffsetDateTime,
}

impl ScheduleTick {
    /// A claimed tick. Stores call this.
    pub fn new(schedule: Schedule, due_at: OffsetDateTime) -> Self {
        Self { schedule, due_at }
    }
}

/// Recurring schedules per tenant, shared by every instance.
///
/// # Contract
/// - A schedule is identified by its tenant and name; `put` replaces one of the same name
///   (its first tick comes one interval after the `put`).
/// - `claim_due` is atomic: each tick of a schedule is handed to exactly one caller, however
///   many call it at once, in this process or in others. Claiming moves the schedule's next
///   tick to the first multiple of its interval after now, so ticks missed while no one
///   claimed are skipped, never fired in a burst.
/// - A removed schedule is never claimed again.
///
/// # Errors
/// `InvalidInput` for a bad name; `Unavailable` when the backend cannot be reached.
#[async_trait]
pub trait ScheduleStore: std::fmt::Debug + Send + Sync + 'static {
    /// Adds or replaces `schedule`; its first tick is due one interval from now.
    async fn put(&self, schedule: Schedule) -> Result<()>;

    /// Removes the schedule `name` of `tenant`; `false` when there was none.
    async fn remove(&self, tenant: TenantId, name: &str) -> Result<bool>;

    /// The schedules of `tenant`, by name.
    async fn list(&self, tenant: TenantId) -> Result<Vec<Schedule>>;

    /// Claims up to `limit` ticks that are due, each for this caller alone.
    async fn claim_due(&self, limit: usize) -> Result<Vec<ScheduleTick>>;
}
