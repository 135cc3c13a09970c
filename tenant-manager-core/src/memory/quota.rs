//! `InMemoryQuotaEnforcer`: GCRA rate limits and usage quotas held in sharded maps.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dashmap::DashMap;

use crate::domain::{RateLimit, TenantId};
use crate::error::{Error, Result};
use crate::traits::gcra::{Gcra, GcraOutcome};
use crate::traits::{QuotaEnforcer, RateDecision, RateKey, UsageDecision, UsageKind};

/// Name of this backend in [`Error::Unavailable`].
const BACKEND: &str = "memory quota store";

/// Shortest gap between two sweeps forced by a full key table.
const FULL_SWEEP_GAP: Duration = Duration::from_millis(100);

/// Settings of an [`InMemoryQuotaEnforcer`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct InMemoryQuotaConfig {
    /// Most rate keys tracked at once (default 500,000: roughly 60 MB at worst).
    pub max_keys: usize,
    /// How often keys whose allowance is full again are forgotten (default 30 s).
    pub sweep_interval: Duration,
}

impl Default for InMemoryQuotaConfig {
    fn default() -> Self {
        Self {
            max_keys: 500_000,
            sweep_interval: Duration::from_secs(30),
        }
    }
}

impl InMemoryQuotaConfig {
    /// Sets the most rate keys tracked at once.
    #[must_use]
    pub fn with_max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys;
        self
    }

    /// Sets how often replenished keys are forgotten.
    #[must_use]
    pub fn with_sweep_interval(mut self, interval: Duration) -> Self {
        self.sweep_interval = interval;
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `max_keys` when 0, on `sweep_interval` when not 1 ms to 1 day.
    pub fn validate(&self) -> Result<()> {
        if self.max_keys == 0 {
            return Err(Error::invalid("max_keys", "must be at least 1"));
        }
        if self.sweep_interval < Duration::from_millis(1)
            || self.sweep_interval > Duration::from_secs(86_400)
        {
            return Err(Error::invalid(
                "sweep_interval",
                "must be between 1 ms and 1 day",
            ));
        }
        Ok(())
    }
}

/// The key table is full of keys that are still limited.
#[derive(Debug, thiserror::Error)]
#[error("rate key table is full ({max_keys} keys still limited)")]
struct KeyTableFull {
    max_keys: usize,
}

/// Rate limits and usage quotas for one process.
///
/// Rate limits use GCRA ([`crate::traits::gcra`]): one TAT per [`RateKey`] in a sharded map, updated
/// under that key's shard lock only, so checks are atomic per key with no global lock and O(1)
/// in the number of keys. Usage quotas are one pair of counters per tenant, checked and
/// consumed under the same kind of lock.
///
/// Memory is bounded: a key whose allowance is full again carries no information, so a sweep
/// forgets such keys every [`sweep_interval`](InMemoryQuotaConfig::sweep_interval) (on the
/// blocking pool, started by the first check after the interval). At most
/// [`max_keys`](InMemoryQuotaConfig::max_keys) keys are tracked (a soft cap, exceeded at most by
/// the number of concurrent first checks); when the table is full of still-limited keys,
/// a check of a new key returns [`Error::Unavailable`] and the caller fails open or closed.
/// Usage counters are kept per tenant while non-zero; [`QuotaEnforcer::reset_tenant`] drops them.
///
/// State lives in this process only: every instance of a scaled-out service limits on its own.
/// Clones share the same state.
#[derive(Clone)]
pub struct InMemoryQuotaEnforcer {
    inner: Arc<Inner>,
}

struct Inner {
    rates: DashMap<RateKey, u64>,
    usage: DashMap<TenantId, [u64; 2]>,
    epoch: Instant,
    last_sweep: AtomicU64,
    config: InMemoryQuotaConfig,
}

impl InMemoryQuotaEnforcer {
    /// An enforcer with `config`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the config does not validate.
    pub fn new(config: InMemoryQuotaConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self::unchecked(config))
    }

    fn unchecked(config: InMemoryQuotaConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                rates: DashMap::new(),
                usage: DashMap::new(),
                epoch: Instant::now(),
                last_sweep: AtomicU64::new(0),
                config,
            }),
        }
    }

    /// Rate keys currently tracked.
    pub fn tracked_keys(&self) -> usize {
        self.inner.rates.len()
    }

    /// Forgets every rate key whose allowance is full again, now; returns how many were dropped.
    /// The enforcer also does this on its own every sweep interval.
    pub fn sweep_expired(&self) -> usize {
        let now = self.inner.now();
        self.inner.last_sweep.store(now, Ordering::Relaxed);
        self.inner.sweep(now)
    }

    /// Starts a background sweep when the interval has passed since the last one.
    fn maybe_sweep(&self, now: u64) {
        let interval = duration_nanos(self.inner.config.sweep_interval);
        if !self.inner.claim_sweep(now, interval) {
            return;
        }
        let inner = Arc::clone(&self.inner);
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => drop(handle.spawn_blocking(move || inner.sweep(now))),
            Err(_) => {
                inner.sweep(now);
            }
        }
    }

    /// Makes room for a new key, or reports that the table is full.
    fn ensure_room_for(&self, key: &RateKey, now: u64) -> Result<()> {
        let max_keys = self.inner.config.max_keys;
        if self.inner.rates.len() < max_keys || self.inner.rates.contains_key(key) {
            return Ok(());
        }
        if self.inner.claim_sweep(now, duration_nanos(FULL_SWEEP_GAP)) {
            self.inner.sweep(now);
        }
        if self.inner.rates.len() < max_keys {
            Ok(())
        } else {
            Err(Error::unavailable(BACKEND, KeyTableFull { max_keys }))
        }
    }
}

impl Inner {
    /// Nanoseconds since this enforcer was created.
    fn now(&self) -> u64 {
        duration_nanos(self.epoch.elapsed())
    }

    /// Whether this caller won the right to sweep (at most one per `gap`).
    fn claim_sweep(&self, now: u64, gap: u64) -> bool {
        let last = self.last_sweep.load(Ordering::Relaxed);
        now.saturating_sub(last) >= gap
            && self
                .last_sweep
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }

    /// Drops keys whose TAT is not after `now`; returns how many.
    fn sweep(&self, now: u64) -> usize {
        let mut dropped = 0;
        self.rates.retain(|_, tat| {
            let keep = *tat > now;
            dropped += usize::from(!keep);
            keep
        });
        dropped
    }
}

/// Applies a GCRA check to one stored TAT, writing the new TAT when admitted.
fn apply(gcra: &Gcra, tat: &mut u64, now: u64, cost: u64) -> Result<GcraOutcome> {
    let outcome = gcra.check(*tat, now, cost)?;
    if outcome.allowed {
        *tat = outcome.tat;
    }
    Ok(outcome)
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn usage_slot(kind: UsageKind) -> usize {
    match kind {
        UsageKind::Users => 0,
        UsageKind::StorageBytes => 1,
    }
}

impl Default for InMemoryQuotaEnforcer {
    /// An enforcer with the default (valid) config.
    fn default() -> Self {
        Self::unchecked(InMemoryQuotaConfig::default())
    }
}

impl fmt::Debug for InMemoryQuotaEnforcer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryQuotaEnforcer")
            .field("tracked_keys", &self.inner.rates.len())
            .field("tenants_with_usage", &self.inner.usage.len())
            .field("config", &self.inner.config)
            .finish()
    }
}

#[async_trait]
impl QuotaEnforcer for InMemoryQuotaEnforcer {
    async fn check_rate(
        &self,
        key: &RateKey,
        limit: &RateLimit,
        cost: u32,
    ) -> Result<RateDecision> {
        let gcra = Gcra::from_rate_limit_nanos(limit)?;
        let cost = u64::from(cost);
        let before = self.inner.now();
        self.maybe_sweep(before);
        // The clock is read again under the key's lock: checks of one key then see time in
        // the order they are applied, so each admission reports its own `remaining`.
        let outcome = if let Some(mut tat) = self.inner.rates.get_mut(key) {
            apply(&gcra, &mut tat, self.inner.now(), cost)?
        } else {
            // Validate before reserving room, so bad input never evicts or fills anything.
            gcra.check(0, before, cost)?;
            self.ensure_room_for(key, before)?;
            let mut tat = self.inner.rates.entry(key.clone()).or_insert(0);
            apply(&gcra, &mut tat, self.inner.now(), cost)?
        };
        Ok(outcome.decision(limit.limit, Duration::from_nanos(1)))
    }

    async fn consume_usage(
        &self,
        tenant: TenantId,
        kind: UsageKind,
        amount: i64,
        max: u64,
    ) -> Result<UsageDecision> {
        let slot = usage_slot(kind);
        let usage = &self.inner.usage;
        let amount_abs = amount.unsigned_abs();
        if amount <= 0 {
            let used = match usage.get_mut(&tenant) {
                Some(mut counters) => {
                    counters[slot] = counters[slot].saturating_sub(amount_abs);
                    counters[slot]
                }
                None => 0,
            };
            usage.remove_if(&tenant, |_, counters| counters.iter().all(|c| *c == 0));
            return Ok(UsageDecision::new(true, used, max));
        }
        if amount_abs > max {
            let used = usage.get(&tenant).map_or(0, |c| c[slot]);
            return Ok(UsageDecision::new(false, used, max));
        }
        let mut counters = usage.entry(tenant).or_insert([0; 2]);
        let used = counters[slot];
        match used.checked_add(amount_abs) {
            Some(next) if next <= max => {
                counters[slot] = next;
                Ok(UsageDecision::new(true, next, max))
            }
            _ => Ok(UsageDecision::new(false, used, max)),
        }
    }

    async fn set_usage(&self, tenant: TenantId, kind: UsageKind, value: u64) -> Result<()> {
        let slot = usage_slot(kind);
        if value == 0 {
            if let Some(mut counters) = self.inner.usage.get_mut(&tenant) {
                counters[slot] = 0;
            }
            self.inner
                .usage
                .remove_if(&tenant, |_, counters| counters.iter().all(|c| *c == 0));
        } else {
            self.inner.usage.entry(tenant).or_insert([0; 2])[slot] = value;
        }
        Ok(())
    }

    async fn usage(&self, tenant: TenantId, kind: UsageKind) -> Result<u64> {
        Ok(self
            .inner
            .usage
            .get(&tenant)
            .map_or(0, |c| c[usage_slot(kind)]))
    }

    async fn reset_tenant(&self, tenant: TenantId) -> Result<()> {
        self.inner.rates.remove(&RateKey::tenant(tenant));
        self.inner.usage.remove(&tenant);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(limit: u64, window_ms: u64) -> RateLimit {
        RateLimit { limit, window_ms }
    }

    fn key(name: &str) -> RateKey {
        RateKey::custom(name).unwrap_or_else(|e| panic!("{e}"))
    }

    fn enforcer(config: InMemoryQuotaConfig) -> InMemoryQuotaEnforcer {
        InMemoryQuotaEnforcer::new(config).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn config_is_validated() {
        let bad = InMemoryQuotaConfig::default().with_max_keys(0);
        assert_eq!(
            InMemoryQuotaEnforcer::new(bad)
                .err()
                .and_then(|e| e.field().map(str::to_owned)),
            Some("max_keys".to_owned())
        );
        let bad = InMemoryQuotaConfig::default().with_sweep_interval(Duration::ZERO);
        assert!(InMemoryQuotaEnforcer::new(bad).is_err());
    }

    #[tokio::test]
    async fn replenished_keys_are_swept_and_limited_keys_kept() {
        let q = enforcer(InMemoryQuotaConfig::default());
        for i in 0..50 {
            q.check_rate(&key(&format!("short{i}")), &rate(10, 1), 1)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        q.check_rate(&key("long"), &rate(1, 3_600_000), 1)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(q.tracked_keys(), 51);
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(q.sweep_expired(), 50);
        assert_eq!(q.tracked_keys(), 1);
        let refused = q
            .check_rate(&key("long"), &rate(1, 3_600_000), 1)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!refused.allowed, "the limited key survived the sweep");
    }

    #[tokio::test]
    async fn a_full_table_refuses_new_keys_but_serves_known_ones_and_recovers() {
        let q = enforcer(InMemoryQuotaConfig::default().with_max_keys(3));
        let long = rate(5, 3_600_000);
        for name in ["a", "b", "c"] {
            q.check_rate(&key(name), &long, 1)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let err = q.check_rate(&key("d"), &long, 1).await.err();
        assert_eq!(
            err.as_ref().map(Error::code),
            Some("backend_unavailable"),
            "{err:?}"
        );
        let known = q
            .check_rate(&key("a"), &long, 1)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(known.remaining, 3);
        let short = InMemoryQuotaEnforcer::new(InMemoryQuotaConfig::default().with_max_keys(1))
            .unwrap_or_else(|e| panic!("{e}"));
        short
            .check_rate(&key("x"), &rate(100, 1), 1)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        tokio::time::sleep(FULL_SWEEP_GAP + Duration::from_millis(10)).await;
        let fresh = short.check_rate(&key("y"), &rate(100, 1), 1).await;
        assert!(
            fresh.is_ok_and(|d| d.allowed),
            "a full table of replenished keys is swept to make room"
        );
    }

    #[tokio::test]
    async fn usage_entries_disappear_when_released_to_zero() {
        let q = InMemoryQuotaEnforcer::default();
        let t = TenantId::new();
        let d = q
            .consume_usage(t, UsageKind::StorageBytes, 10, 100)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(d.allowed && d.used == 10);
        let d = q
            .consume_usage(t, UsageKind::StorageBytes, -50, 100)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(d.allowed && d.used == 0);
        assert_eq!(q.inner.usage.len(), 0);
        let d = q
            .consume_usage(t, UsageKind::Users, 5, 4)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!d.allowed && d.used == 0);
        assert_eq!(q.inner.usage.len(), 0, "a refusal stores nothing");
    }
}
