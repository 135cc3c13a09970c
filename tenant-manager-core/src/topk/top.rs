//! [`TopTenants`]: the sharded, decaying Space-Saving sketch of requests per tenant.

use std::hash::BuildHasher;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::domain::{TenantId, TenantSlug};
use crate::error::{Error, Result};

use super::sketch::SpaceSaving;
use super::stats::TenantStats;

/// How [`TopTenants`] is sized and how fast it forgets.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TopTenantsConfig {
    /// Tenants monitored (and exported): 1 to [`TopTenantsConfig::MAX_K`]. Default 20.
    pub k: usize,
    /// Every figure is halved once per this period, so a burst weighs half as much one
    /// period later. Default 60 s.
    pub half_life: Duration,
    /// Independent sketches, each behind its own mutex; a tenant always lands in the same one.
    /// Default 8.
    pub shards: usize,
}

impl TopTenantsConfig {
    /// Largest `k`: the number of `tenant` label values the exported series may carry.
    pub const MAX_K: usize = 1000;

    /// Sets `k`.
    #[must_use]
    pub fn with_k(mut self, k: usize) -> Self {
        self.k = k;
        self
    }

    /// Sets the half-life of the figures.
    #[must_use]
    pub fn with_half_life(mut self, half_life: Duration) -> Self {
        self.half_life = half_life;
        self
    }

    /// Sets the number of shards.
    #[must_use]
    pub fn with_shards(mut self, shards: usize) -> Self {
        self.shards = shards;
        self
    }
}

impl Default for TopTenantsConfig {
    fn default() -> Self {
        Self {
            k: 20,
            half_life: Duration::from_secs(60),
            shards: 8,
        }
    }
}

/// What to rank the monitored tenants by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RankBy {
    /// Requests (decayed), most first.
    Requests,
    /// Error answers (decayed), most first.
    Errors,
    /// p99 latency, slowest first.
    Latency,
}

impl FromStr for RankBy {
    type Err = Error;

    fn from_str(value: &str) -> Result<Self> {
        match value {
            "requests" => Ok(RankBy::Requests),
            "errors" => Ok(RankBy::Errors),
            "latency" => Ok(RankBy::Latency),
            _ => Err(Error::invalid(
                "by",
                "must be one of requests, errors, latency",
            )),
        }
    }
}

/// One of the busiest tenants, as [`TopTenants::top`] reports it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TopTenant {
    /// The tenant.
    pub tenant: TenantId,
    /// Its slug when last recorded.
    pub slug: TenantSlug,
    /// Requests, decayed; never below the true (decayed) number.
    pub requests: u64,
    /// Most `requests` may overstate: `requests - overestimate <= true <= requests`.
    pub overestimate: u64,
    /// Error answers since the tenant entered the top K, decayed.
    pub errors: u64,
    /// Median latency in seconds (a histogram bucket's upper bound).
    pub p50_seconds: f64,
    /// 99th percentile latency in seconds (a histogram bucket's upper bound).
    pub p99_seconds: f64,
}

struct Shard {
    sketch: SpaceSaving<TenantId, TenantStats>,
    /// Half-lives elapsed when this shard was last decayed.
    epoch: u64,
}

impl Shard {
    fn catch_up(&mut self, epoch: u64) {
        let behind = epoch.saturating_sub(self.epoch);
        if behind == 0 {
            return;
        }
        self.epoch = epoch;
        if behind >= 64 {
            self.sketch.clear();
            return;
        }
        self.sketch.rescale(
            |n| n >> behind,
            |stats| {
                for _ in 0..behind {
                    stats.halve();
                }
            },
        );
    }
}

/// Requests, errors and latencies of the K busiest tenants, in memory bounded by
/// `k × shards` counters whatever the number of tenants.
///
/// # Contract
/// Over the requests recorded since start, with decay switched off (a half-life longer than
/// the run) and `N` requests in all: every tenant with more than `N / k` requests is among
/// [`top`](Self::top)'s answer, and each reported count is within its `overestimate` of the
/// truth. With decay, the same holds for the decayed weights (up to rounding of the halving).
/// Errors and latencies cover the time a tenant has been monitored: a tenant that enters
/// the top K starts them afresh.
///
/// [`record`](Self::record) locks one shard for a hash lookup and a heap sift; no lock is
/// held across an `.await` and none is global.
pub struct TopTenants {
    shards: Box<[Mutex<Shard>]>,
    hasher: foldhash::fast::FixedState,
    config: TopTenantsConfig,
    started: Instant,
}

impl std::fmt::Debug for TopTenants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopTenants")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl TopTenants {
    /// A sketch with `config`, its clock starting now.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on field `k` (0 or above [`TopTenantsConfig::MAX_K`]),
    /// `half_life` (zero) or `shards` (0 or above 256).
    pub fn new(config: TopTenantsConfig) -> Result<Self> {
        if config.k == 0 || config.k > TopTenantsConfig::MAX_K {
            return Err(Error::invalid("k", "must be 1 to 1000"));
        }
        if config.half_life.is_zero() {
            return Err(Error::invalid("half_life", "must be longer than zero"));
        }
        if config.shards == 0 || config.shards > 256 {
            return Err(Error::invalid("shards", "must be 1 to 256"));
        }
        let shards = (0..config.shards)
            .map(|_| {
                Mutex::new(Shard {
                    sketch: SpaceSaving::new(config.k),
                    epoch: 0,
                })
            })
            .collect();
        Ok(Self {
            shards,
            hasher: foldhash::fast::FixedState::default(),
            config,
            started: Instant::now(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &TopTenantsConfig {
        &self.config
    }

    /// Records one answered request of `tenant` at `now`: whether it was an error, and how
    /// long it took.
    pub fn record(
        &self,
        tenant: TenantId,
        slug: &TenantSlug,
        error: bool,
        latency: Duration,
        now: Instant,
    ) {
        let epoch = self.epoch(now);
        let mut shard = self.shard(&tenant);
        shard.catch_up(epoch);
        shard.sketch.observe(
            &tenant,
            1,
            || TenantStats::new(slug.clone()),
            |stats| stats.record(error, latency),
        );
    }

    /// The `k` busiest tenants at `now` (the sketch's top K by requests), ordered by `by`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on field `k` when `k` is 0 or above the configured K.
    pub fn top(&self, k: usize, by: RankBy, now: Instant) -> Result<Vec<TopTenant>> {
        if k == 0 || k > self.config.k {
            return Err(Error::invalid(
                "k",
                format!("must be 1 to {}", self.config.k),
            ));
        }
        let epoch = self.epoch(now);
        let mut all = Vec::with_capacity(self.config.k * self.shards.len());
        for shard in self.shards.iter() {
            let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            shard.catch_up(epoch);
            all.extend(shard.sketch.counters().map(|counter| TopTenant {
                tenant: counter.key,
                slug: counter.payload.slug.clone(),
                requests: counter.count,
                overestimate: counter.error,
                errors: counter.payload.errors,
                p50_seconds: counter.payload.quantile(0.5),
                p99_seconds: counter.payload.quantile(0.99),
            }));
        }
        // The sketch's top K by estimated requests: fewer than K tenants can each hold more
        // than N/K, so every tenant above N/K is in it. Ties broken by id, so it is stable.
        all.sort_unstable_by(|a, b| {
            b.requests
                .cmp(&a.requests)
                .then_with(|| a.tenant.cmp(&b.tenant))
        });
        all.truncate(self.config.k);
        match by {
            RankBy::Requests => {}
            RankBy::Errors => all.sort_by_key(|t| std::cmp::Reverse(t.errors)),
            RankBy::Latency => all.sort_by(|a, b| b.p99_seconds.total_cmp(&a.p99_seconds)),
        }
        all.truncate(k);
        Ok(all)
    }

    fn epoch(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.started).as_nanos();
        u64::try_from(elapsed / self.config.half_life.as_nanos().max(1)).unwrap_or(u64::MAX)
    }

    fn shard(&self, tenant: &TenantId) -> std::sync::MutexGuard<'_, Shard> {
        let at = (self.hasher.hash_one(tenant) as usize) % self.shards.len();
        self.shards[at]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
