//! [`RedisSchedules`]: recurring schedules per tenant in Redis, shared by every instance.

use std::time::Duration;

use async_trait::async_trait;
use tenant_manager_core::{Error, Result, Schedule, ScheduleStore, ScheduleTick, TenantId};
use time::OffsetDateTime;

use crate::pool::RedisPool;
use crate::scripts;

/// Recurring schedules in Redis, obeying the [`ScheduleStore`] contract.
///
/// Each schedule is a field of its tenant's hash (the schedule as JSON) and a member of one
/// sorted set scored by its next tick (ms of the Redis server's clock, so instances' clocks
/// do not matter). `claim_due` is one script that takes the due members and moves each to
/// its next tick, atomically: two instances never get the same tick. All keys of one store
/// share a hash tag, so it works on a Redis Cluster.
#[derive(Debug, Clone)]
pub struct RedisSchedules {
    pool: RedisPool,
    due: String,
    tenant_prefix: String,
}

impl RedisSchedules {
    /// The schedules named `name` (1 to 64 of `[a-z0-9_.-]`; stores with different names are
    /// independent) on `pool`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on field `schedules.name`.
    pub fn new(pool: &RedisPool, name: &str) -> Result<Self> {
        let ok = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
        if !ok {
            return Err(Error::invalid(
                "schedules.name",
                "must be 1 to 64 of [a-z0-9_.-]",
            ));
        }
        let (due, tenant_prefix) = schedule_keys(pool.keys().prefix(), name);
        Ok(Self {
            pool: pool.clone(),
            due,
            tenant_prefix,
        })
    }

    fn tenant_key(&self, tenant: TenantId) -> String {
        format!("{}{tenant}", self.tenant_prefix)
    }
}

/// The due set and the prefix of the tenants' hashes of the store `name`, under one hash tag:
/// the claim script reads hashes whose names it computes from that prefix.
pub(crate) fn schedule_keys(prefix: &str, name: &str) -> (String, String) {
    let base = format!("{prefix}schedules:{{{name}}}:");
    (format!("{base}due"), format!("{base}tenant:"))
}

fn member(tenant: TenantId, name: &str) -> String {
    format!("{tenant}/{name}")
}

fn parse(json: &str) -> Result<Schedule> {
    serde_json::from_str(json).map_err(|e| Error::internal_with("stored schedule is not JSON", e))
}

#[async_trait]
impl ScheduleStore for RedisSchedules {
    async fn put(&self, schedule: Schedule) -> Result<()> {
        let json = serde_json::to_string(&schedule)
            .map_err(|e| Error::internal_with("schedule does not serialize", e))?;
        let every = u64::try_from(schedule.every.as_millis()).unwrap_or(u64::MAX);
        let _: i64 = self
            .pool
            .invoke(
                scripts::SCHEDULE_PUT
                    .key(&self.due)
                    .key(self.tenant_key(schedule.tenant_id))
                    .arg(member(schedule.tenant_id, &schedule.name))
                    .arg(&schedule.name)
                    .arg(json)
                    .arg(every),
            )
            .await?;
        Ok(())
    }

    async fn remove(&self, tenant: TenantId, name: &str) -> Result<bool> {
        let removed: i64 = self
            .pool
            .invoke(
                scripts::SCHEDULE_REMOVE
                    .key(&self.due)
                    .key(self.tenant_key(tenant))
                    .arg(member(tenant, name))
                    .arg(name),
            )
            .await?;
        Ok(removed == 1)
    }

    async fn list(&self, tenant: TenantId) -> Result<Vec<Schedule>> {
        let all: std::collections::BTreeMap<String, String> = self
            .pool
            .query(redis::cmd("HGETALL").arg(self.tenant_key(tenant)))
            .await?;
        all.values().map(|json| parse(json)).collect()
    }

    async fn claim_due(&self, limit: usize) -> Result<Vec<ScheduleTick>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let reply: Vec<String> = self
            .pool
            .invoke(
                scripts::SCHEDULE_CLAIM
                    .key(&self.due)
                    .arg(limit)
                    .arg(&self.tenant_prefix),
            )
            .await?;
        reply
            .chunks(2)
            .map(|pair| match pair {
                [json, due] => {
                    let ms: i64 = due
                        .parse()
                        .map_err(|_| Error::internal("schedule tick is not a number"))?;
                    let due_at = OffsetDateTime::UNIX_EPOCH
                        + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
                    Ok(ScheduleTick::new(parse(json)?, due_at))
                }
                _ => Err(Error::internal(
                    "unexpected reply of the schedule claim script",
                )),
            })
            .collect()
    }
}
