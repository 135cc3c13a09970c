//! The leased budgets of one enforcer: per rate key, the cells this instance claimed from
//! Redis with the lease script, spent in process without a round trip (see
//! [`RateLeaseConfig`] for the bound this keeps).

mod state;

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use dashmap::DashMap;
use tenant_manager_core::{Error, RateDecision, RateKey, Result};

use super::check::{Check, Params};
use super::lease::RateLeaseConfig;
use crate::error::BACKEND;
use crate::pool::RedisPool;
use crate::scripts;
use state::{Claim, Grant, Lease, Reply, micros};

/// Below this many keys the map is never swept.
const MIN_SWEEP: usize = 1_024;

/// The per-key budgets of one enforcer.
pub(super) struct Leases {
    config: RateLeaseConfig,
    slots: DashMap<RateKey, Arc<Slot>>,
    /// Sweep idle slots once the map holds this many (twice what the last sweep left).
    sweep_at: AtomicUsize,
}

impl fmt::Debug for Leases {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Leases")
            .field("config", &self.config)
            .field("keys", &self.slots.len())
            .finish()
    }
}

/// One key's budget on this instance: the lease behind a short mutex (never held across an
/// await), and an async lock so one claim per key is in flight at a time.
#[derive(Debug, Default)]
struct Slot {
    lease: Mutex<Lease>,
    claim: tokio::sync::Mutex<()>,
}

/// A claim for the same key failed while this call waited for it.
#[derive(Debug, thiserror::Error)]
#[error("redis unavailable to the concurrent lease claim of this rate key")]
struct ConcurrentClaimFailed;

impl Leases {
    pub(super) fn new(config: RateLeaseConfig) -> Self {
        Self {
            config,
            slots: DashMap::new(),
            sweep_at: AtomicUsize::new(MIN_SWEEP),
        }
    }

    pub(super) fn config(&self) -> &RateLeaseConfig {
        &self.config
    }

    /// Admits `cost` from the key's lease, or claims cells from Redis in one round trip. One
    /// claim per key is in flight at a time: concurrent calls wait for it, then take from
    /// what it brought or claim in turn (so a call may wait for another's round trip before
    /// its own); when it found Redis unavailable, they report that at once.
    pub(super) async fn check(
        &self,
        pool: &RedisPool,
        key: &RateKey,
        check: Check,
    ) -> Result<RateDecision> {
        let slot = self.slot(key);
        let seen = {
            let mut lease = slot.lock();
            if let Some(decision) = lease.local(check, Instant::now()) {
                return Ok(decision);
            }
            lease.claims()
        };
        let _claiming = slot.claim.lock().await;
        let claim = {
            let mut lease = slot.lock();
            let now = Instant::now();
            if let Some(decision) = lease.local(check, now) {
                return Ok(decision);
            }
            if lease.claims() != seen && lease.last_unavailable() {
                return Err(Error::unavailable(BACKEND, ConcurrentClaimFailed));
            }
            lease.plan(check, self.config.cap(check.limit), now)
        };
        let sent = Instant::now();
        let reply = self.send(pool, key, check.params, &claim).await;
        let mut lease = slot.lock();
        lease.record_claim(matches!(reply, Err(Error::Unavailable { .. })));
        let reply = match reply {
            Ok(reply) => reply,
            Err(err) => {
                lease.restore(&claim, Instant::now());
                return Err(err);
            }
        };
        let grant = Grant {
            sent,
            expires: sent + self.config.ttl,
        };
        let decision = lease.settle(check, &claim, &reply, grant, Instant::now());
        drop(lease);
        if claim.give_back_cells > 0 {
            let outcome = if reply.given_back {
                "given_back"
            } else {
                "lost"
            };
            metrics::counter!("quota_rate_lease_cells_total", "outcome" => outcome)
                .increment(claim.give_back_cells);
        }
        let outcome = if reply.granted > 0 {
            "granted"
        } else {
            "refused"
        };
        metrics::counter!("quota_rate_lease_claims_total", "outcome" => outcome).increment(1);
        Ok(decision)
    }

    /// Cells this instance holds for `key` that are still usable.
    pub(super) fn held(&self, key: &RateKey) -> u64 {
        self.slots
            .get(key)
            .map_or(0, |slot| slot.lock().held(Instant::now()))
    }

    /// Drops this instance's lease of `key` (its cells are not given back).
    pub(super) fn forget(&self, key: &RateKey) {
        self.slots.remove(key);
    }

    async fn send(
        &self,
        pool: &RedisPool,
        key: &RateKey,
        params: Params,
        claim: &Claim,
    ) -> Result<Reply> {
        let reply: Vec<i64> = pool
            .invoke(
                scripts::GCRA_LEASE
                    .key(pool.keys().rate(key))
                    .arg(params.interval)
                    .arg(params.capacity)
                    .arg(claim.need)
                    .arg(claim.want)
                    .arg(claim.give_back_tat)
                    .arg(claim.give_back_us),
            )
            .await?;
        let [granted, available, backlog, retry, tat, given_back] = reply[..] else {
            return Err(Error::internal("unexpected reply of the rate lease script"));
        };
        let num = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(Reply {
            granted: num(granted),
            available: num(available),
            backlog: micros(num(backlog)),
            retry: micros(num(retry)),
            tat: num(tat),
            given_back: given_back == 1,
        })
    }

    /// The key's slot, created on first use; idle slots are swept once the map has doubled
    /// since the last sweep (amortised O(1) per new key).
    fn slot(&self, key: &RateKey) -> Arc<Slot> {
        if let Some(slot) = self.slots.get(key) {
            return slot.clone();
        }
        let slot = self.slots.entry(key.clone()).or_default().clone();
        let at = self.sweep_at.load(Ordering::Relaxed);
        if self.slots.len() >= at
            && self
                .sweep_at
                .compare_exchange(at, usize::MAX, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            let now = Instant::now();
            // A slot someone holds (strong count above the map's own) is never dropped.
            self.slots
                .retain(|_, slot| Arc::strong_count(slot) > 1 || !slot.lock().idle(now));
            let next = self.slots.len().saturating_mul(2).max(MIN_SWEEP);
            self.sweep_at.store(next, Ordering::Relaxed);
        }
        slot
    }
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, Lease> {
        self.lease.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> RateKey {
        RateKey::custom(&format!("sweep-{i}")).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn idle_slots_are_swept_as_the_map_doubles_and_held_ones_stay() {
        let leases = Leases::new(RateLeaseConfig::default());
        let held = leases.slot(&key(0));
        for i in 1..MIN_SWEEP - 1 {
            drop(leases.slot(&key(i)));
        }
        assert_eq!(
            leases.slots.len(),
            MIN_SWEEP - 1,
            "no sweep below the threshold"
        );
        drop(leases.slot(&key(MIN_SWEEP - 1)));
        assert!(
            leases.slots.len() <= 2,
            "idle slots dropped: {}",
            leases.slots.len()
        );
        assert!(leases.slots.contains_key(&key(0)), "a slot in use stays");
        assert!(Arc::ptr_eq(&held, &leases.slot(&key(0))));
        assert_eq!(leases.sweep_at.load(Ordering::Relaxed), MIN_SWEEP);
    }
}
