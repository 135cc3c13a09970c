//! [`RedisQuotaEnforcer`]: GCRA rate limits (one round trip per check, or leased budgets
//! spent in process) and usage quotas.

mod check;
mod lease;
mod leases;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tenant_manager_core::gcra::Gcra;
use tenant_manager_core::{
    Error, QuotaEnforcer, RateDecision, RateKey, RateLimit, Result, TenantId, UsageDecision,
    UsageKind,
};

use crate::config::UnavailablePolicy;
use crate::keys::Keys;
use crate::pool::RedisPool;
use crate::scripts;
use check::{Check, Params};
pub use lease::RateLeaseConfig;
use leases::Leases;

/// Largest integer a Lua number (an IEEE double) holds exactly.
const LUA_MAX_EXACT: u64 = (1 << 53) - 1;

/// Rate limits and usage quotas on Redis.
///
/// Rate limits use GCRA (the generic cell rate algorithm, with the formulas of
/// [`tenant_manager_core::gcra`] in microsecond ticks) in a Lua script: one `EVALSHA` per
/// check, timed by the server's clock (`TIME`), so instances with skewed clocks agree and
/// concurrent checks are serialised by Redis. State per key is one integer with a TTL of at
/// most one window.
///
/// With [`RedisQuotaEnforcer::with_rate_leases`], each instance instead claims several cells
/// of a key's allowance in one script call (same key, same formulas, on the server's clock)
/// and admits from them in process until they are used up or expire; a refusal with nothing
/// left is remembered for at most one interval. Redis then sees about one call per lease
/// instead of one per check, and the limit holds within the bound documented on
/// [`RateLeaseConfig`]: exactly the limit in a fresh window, and over any span at most the
/// instances' unused leases more than one script per check would admit. Both modes share the
/// key's state, so instances of either kind can run side by side. A check makes at most one
/// round trip of its own; concurrent checks of one key on one instance wait for the claim in
/// flight (one per key at a time) rather than each claiming. [`QuotaEnforcer::reset_tenant`]
/// drops this instance's lease of the tenant; other instances keep theirs until used or
/// expired.
///
/// Usage quotas are counters in one hash per tenant, changed by an atomic check-and-consume
/// script.
///
/// When Redis cannot be reached, [`QuotaEnforcer::check_rate`] follows the
/// [`UnavailablePolicy`] (from [`RedisConfig::quota_unavailable`], or
/// [`RedisQuotaEnforcer::with_unavailable_policy`]); [`RedisQuotaEnforcer::try_check_rate`]
/// always reports [`Error::Unavailable`]. Usage calls always report it.
///
/// [`RedisConfig::quota_unavailable`]: crate::RedisConfig::quota_unavailable
#[derive(Debug, Clone)]
pub struct RedisQuotaEnforcer {
    pool: RedisPool,
    policy: UnavailablePolicy,
    leases: Option<Arc<Leases>>,
}

impl RedisQuotaEnforcer {
    /// An enforcer on `pool`, with the pool's configured unavailability policy.
    pub fn new(pool: &RedisPool) -> Self {
        Self {
            pool: pool.clone(),
            policy: pool.config().quota_unavailable,
            leases: None,
        }
    }

    /// Checks rate limits from budgets leased out of Redis (see [`RateLeaseConfig`]) instead
    /// of one script per check. Leases belong to this value and its clones: build one
    /// enforcer per process and share it.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on a field of `config` (`rate_lease.*`).
    pub fn with_rate_leases(mut self, config: RateLeaseConfig) -> Result<Self> {
        config.validate()?;
        self.leases = Some(Arc::new(Leases::new(config)));
        Ok(self)
    }

    /// The lease settings, when rate limits are leased.
    pub fn rate_leases(&self) -> Option<&RateLeaseConfig> {
        self.leases.as_deref().map(Leases::config)
    }

    /// Cells of `key`'s allowance this instance holds, unused and unexpired (0 without
    /// leases): what it can still admit without asking Redis.
    pub fn leased_cells(&self, key: &RateKey) -> u64 {
        self.leases.as_ref().map_or(0, |leases| leases.held(key))
    }

    /// Sets what `check_rate` answers when Redis cannot be reached.
    #[must_use]
    pub fn with_unavailable_policy(mut self, policy: UnavailablePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The policy in force.
    pub fn unavailable_policy(&self) -> UnavailablePolicy {
        self.policy
    }

    /// [`QuotaEnforcer::check_rate`] without the unavailability policy: an unreachable Redis
    /// is always reported.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad limit or a zero cost; [`Error::Unavailable`].
    pub async fn try_check_rate(
        &self,
        key: &RateKey,
        limit: &RateLimit,
        cost: u32,
    ) -> Result<RateDecision> {
        let (interval, capacity) = gcra_params(limit, cost)?;
        let decision = match &self.leases {
            Some(leases) => {
                let check = Check {
                    params: Params { interval, capacity },
                    limit: limit.limit,
                    cost: u64::from(cost),
                };
                leases.check(&self.pool, key, check).await?
            }
            None => {
                self.check_by_script(key, limit, cost, interval, capacity)
                    .await?
            }
        };
        metrics::counter!(
            "quota_rate_checks_total",
            "outcome" => if decision.allowed { "allowed" } else { "denied" }
        )
        .increment(1);
        Ok(decision)
    }

    /// One `EVALSHA` of the GCRA script.
    async fn check_by_script(
        &self,
        key: &RateKey,
        limit: &RateLimit,
        cost: u32,
        interval: u64,
        capacity: u64,
    ) -> Result<RateDecision> {
        let reply: Vec<i64> = self
            .pool
            .invoke(
                scripts::GCRA
                    .key(self.pool.keys().rate(key))
                    .arg(interval)
                    .arg(capacity)
                    .arg(cost),
            )
            .await?;
        let [allowed, remaining, reset_us, retry_us] = reply[..] else {
            return Err(Error::internal("unexpected reply of the rate limit script"));
        };
        let micros = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
        let allowed = allowed == 1;
        Ok(RateDecision::new(
            allowed,
            limit.limit,
            u64::try_from(remaining).unwrap_or(0),
            micros(reset_us),
            (!allowed).then(|| micros(retry_us)),
        ))
    }

    fn on_unavailable(&self, err: Error, limit: &RateLimit, cost: u32) -> Result<RateDecision> {
        let outcome = match self.policy {
            UnavailablePolicy::ReportError => "reported",
            UnavailablePolicy::FailOpen => "fail_open",
            UnavailablePolicy::FailClosed { .. } => "fail_closed",
        };
        metrics::counter!("quota_rate_checks_total", "outcome" => outcome).increment(1);
        match self.policy {
            UnavailablePolicy::ReportError => Err(err),
            UnavailablePolicy::FailOpen => {
                tracing::warn!(error = %err, "rate limit not enforced: redis unavailable");
                Ok(RateDecision::new(
                    true,
                    limit.limit,
                    limit.limit.saturating_sub(u64::from(cost)),
                    Duration::ZERO,
                    None,
                ))
            }
            UnavailablePolicy::FailClosed { retry_after } => {
                tracing::warn!(error = %err, "request refused: redis unavailable");
                Ok(RateDecision::new(
                    false,
                    limit.limit,
                    0,
                    retry_after,
                    Some(retry_after),
                ))
            }
        }
    }
}

/// Largest limit handed to the script: keeps `capacity = limit * interval` (at most
/// `window + limit` microseconds) exact in a Lua number.
const MAX_SCRIPT_LIMIT: u64 = 1 << 52;

/// GCRA parameters in microsecond ticks, by the formulas of [`Gcra`]: the emission interval
/// `ceil(window / limit)` and the capacity `limit * interval`, which admits exactly `limit`
/// requests at once.
///
/// # Errors
/// [`Error::InvalidInput`] on `rate_limit.*` for a bad limit, on `cost` for a cost of 0 or
/// above the limit (it could never be admitted).
fn gcra_params(limit: &RateLimit, cost: u32) -> Result<(u64, u64)> {
    limit.validate()?;
    let gcra = Gcra::new(
        limit.limit.min(MAX_SCRIPT_LIMIT),
        limit.window_ms.saturating_mul(1000),
    )?;
    if cost == 0 {
        return Err(Error::invalid("cost", "must be at least 1"));
    }
    if u64::from(cost) > limit.limit {
        return Err(Error::invalid("cost", "must not exceed the limit"));
    }
    let interval = gcra.emission_interval();
    Ok((interval, gcra.limit().saturating_mul(interval)))
}

#[async_trait]
impl QuotaEnforcer for RedisQuotaEnforcer {
    async fn check_rate(
        &self,
        key: &RateKey,
        limit: &RateLimit,
        cost: u32,
    ) -> Result<RateDecision> {
        match self.try_check_rate(key, limit, cost).await {
            Err(err @ Error::Unavailable { .. }) => self.on_unavailable(err, limit, cost),
            other => other,
        }
    }

    async fn consume_usage(
        &self,
        tenant: TenantId,
        kind: UsageKind,
        amount: i64,
        max: u64,
    ) -> Result<UsageDecision> {
        if amount.unsigned_abs() > LUA_MAX_EXACT {
            return Err(Error::invalid("amount", "must be within ±(2^53 - 1)"));
        }
        let reply: Vec<i64> = self
            .pool
            .invoke(
                scripts::USAGE
                    .key(self.pool.keys().usage(tenant))
                    .arg(Keys::usage_field(kind))
                    .arg(amount)
                    .arg(max.min(LUA_MAX_EXACT)),
            )
            .await?;
        let [allowed, used] = reply[..] else {
            return Err(Error::internal("unexpected reply of the usage script"));
        };
        if allowed != 1 {
            metrics::counter!("quota_usage_denied_total", "kind" => kind.as_str()).increment(1);
        }
        Ok(UsageDecision::new(
            allowed == 1,
            u64::try_from(used).unwrap_or(0),
            max,
        ))
    }

    async fn set_usage(&self, tenant: TenantId, kind: UsageKind, value: u64) -> Result<()> {
        // The usage script counts in Lua numbers (doubles): a measurement above 2^53 - 1 is
        // stored as that, already far above any quota.
        self.pool
            .query::<i64>(
                redis::cmd("HSET")
                    .arg(self.pool.keys().usage(tenant))
                    .arg(Keys::usage_field(kind))
                    .arg(value.min(LUA_MAX_EXACT)),
            )
            .await
            .map(drop)
    }

    async fn usage(&self, tenant: TenantId, kind: UsageKind) -> Result<u64> {
        let used: Option<u64> = self
            .pool
            .query(
                redis::cmd("HGET")
                    .arg(self.pool.keys().usage(tenant))
                    .arg(Keys::usage_field(kind)),
            )
            .await?;
        Ok(used.unwrap_or(0))
    }

    async fn reset_tenant(&self, tenant: TenantId) -> Result<()> {
        if let Some(leases) = &self.leases {
            leases.forget(&RateKey::tenant(tenant));
        }
        let keys = self.pool.keys();
        self.pool
            .query::<i64>(
                redis::cmd("DEL")
                    .arg(keys.rate(&RateKey::tenant(tenant)))
                    .arg(keys.usage(tenant)),
            )
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_capacity_admits_exactly_the_limit_and_bad_costs_are_refused() {
        let limit = RateLimit {
            limit: 100,
            window_ms: 900_000,
        };
        assert_eq!(gcra_params(&limit, 1).ok(), Some((9_000_000, 900_000_000)));
        // Uneven division: the interval rounds up, the capacity is whole intervals.
        let limit = RateLimit {
            limit: 3,
            window_ms: 1,
        };
        assert_eq!(gcra_params(&limit, 1).ok(), Some((334, 1_002)));
        let field = |cost| {
            gcra_params(&limit, cost)
                .err()
                .and_then(|e| e.field().map(str::to_owned))
        };
        assert_eq!(field(0).as_deref(), Some("cost"));
        assert_eq!(field(4).as_deref(), Some("cost"));
        assert!(
            gcra_params(
                &RateLimit {
                    limit: 0,
                    window_ms: 1
                },
                1
            )
            .is_err()
        );
    }
}
