//! GCRA, the generic cell rate algorithm: the pure arithmetic of every rate limiter of
//! tenant-manager.
//!
//! A key's whole state is one number, its *theoretical arrival time* (TAT): the instant at which
//! the key's allowance would be fully replenished. A request of `cost` is admitted when pushing
//! the TAT forward by `cost` emission intervals keeps it within the burst capacity ahead of now.
//!
//! The functions here take the clock as an argument and keep no state, so the in-memory enforcer
//! and a Redis Lua script compute the same answers. Times are integer *ticks* of any unit; the
//! in-memory enforcer uses nanoseconds ([`Gcra::from_rate_limit_nanos`]); a script may use
//! microseconds with the same formulas:
//!
//! ```text
//! interval = ceil(window / limit)          capacity = limit * interval
//! base     = max(tat, now)                 new_tat  = base + cost * interval
//! allowed  = new_tat - now <= capacity     (store new_tat only when allowed)
//! remaining   = floor((capacity - (tat_after - now)) / interval)
//! reset_after = tat_after - now            retry_after = new_tat - capacity - now (refused)
//! ```
//!
//! Rounding the interval up makes the burst exactly `limit` for any window, and the sustained
//! rate at most one tick per request slower than asked.

use std::time::Duration;

use super::quota::RateDecision;
use crate::domain::RateLimit;
use crate::error::{Error, Result};

/// Nanoseconds per millisecond, the tick of [`Gcra::from_rate_limit_nanos`].
const NANOS_PER_MILLI: u64 = 1_000_000;

/// A rate of `limit` requests per window, in integer ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    limit: u64,
    interval: u64,
}

/// The result of one [`Gcra::check`], in ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcraOutcome {
    /// Whether the request is admitted.
    pub allowed: bool,
    /// The TAT to store: the new one when admitted, the given one when refused.
    pub tat: u64,
    /// Requests of cost 1 that would still be admitted right now.
    pub remaining: u64,
    /// Ticks until the allowance is full again.
    pub reset_after: u64,
    /// When refused: ticks until the same request would be admitted.
    pub retry_after: Option<u64>,
}

impl Gcra {
    /// A rate of `limit` requests per `window` ticks.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `rate_limit.limit` or `rate_limit.window_ms` when either is zero.
    pub fn new(limit: u64, window: u64) -> Result<Self> {
        if limit == 0 {
            return Err(Error::invalid("rate_limit.limit", "must be at least 1"));
        }
        if window == 0 {
            return Err(Error::invalid("rate_limit.window_ms", "must be at least 1"));
        }
        Ok(Self {
            limit,
            interval: window.div_ceil(limit),
        })
    }

    /// The rate of a [`RateLimit`], with nanosecond ticks.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the rate limit does not validate.
    pub fn from_rate_limit_nanos(rate: &RateLimit) -> Result<Self> {
        rate.validate()?;
        Self::new(rate.limit, rate.window_ms.saturating_mul(NANOS_PER_MILLI))
    }

    /// Requests admitted in a burst (the limit).
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Ticks one request of cost 1 adds to the TAT.
    pub fn emission_interval(&self) -> u64 {
        self.interval
    }

    /// Checks a request of `cost` at `now` against a key whose stored TAT is `tat` (0, or any
    /// time not after `now`, for a key never seen or fully replenished).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `cost` when it is 0 or above the limit (it could never be admitted).
    pub fn check(&self, tat: u64, now: u64, cost: u64) -> Result<GcraOutcome> {
        if cost == 0 {
            return Err(Error::invalid("cost", "must be at least 1"));
        }
        if cost > self.limit {
            return Err(Error::invalid("cost", "must not exceed the limit"));
        }
        let interval = u128::from(self.interval);
        let capacity = u128::from(self.limit) * interval;
        let now_wide = u128::from(now);
        let base = u128::from(tat.max(now));
        let new_tat = base + u128::from(cost) * interval;
        let remaining_after =
            |backlog: u128| saturate(capacity.saturating_sub(backlog) / interval).min(self.limit);
        if new_tat - now_wide <= capacity {
            let backlog = new_tat - now_wide;
            Ok(GcraOutcome {
                allowed: true,
                tat: saturate(new_tat),
                remaining: remaining_after(backlog),
                reset_after: saturate(backlog),
                retry_after: None,
            })
        } else {
            let backlog = base - now_wide;
            Ok(GcraOutcome {
                allowed: false,
                tat,
                remaining: remaining_after(backlog),
                reset_after: saturate(backlog),
                retry_after: Some(saturate(new_tat - capacity - now_wide)),
            })
        }
    }
}

impl GcraOutcome {
    /// The outcome as a [`RateDecision`] for `limit`, where one tick lasts `tick`.
    pub fn decision(&self, limit: u64, tick: Duration) -> RateDecision {
        RateDecision::new(
            self.allowed,
            limit,
            self.remaining,
            ticks_to_duration(self.reset_after, tick),
            self.retry_after.map(|t| ticks_to_duration(t, tick)),
        )
    }
}

/// `ticks * tick`, saturating at `u64::MAX` nanoseconds.
fn ticks_to_duration(ticks: u64, tick: Duration) -> Duration {
    Duration::from_nanos(saturate(u128::from(ticks) * tick.as_nanos()))
}

fn saturate(value: u128) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn gcra(limit: u64, window: u64) -> Gcra {
        Gcra::new(limit, window).unwrap_or_else(|e| panic!("{e}"))
    }

    fn check(g: &Gcra, tat: u64, now: u64, cost: u64) -> GcraOutcome {
        g.check(tat, now, cost).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs `n` requests of cost 1 at `now`, returning the admitted count and the final TAT.
    fn burst(g: &Gcra, mut tat: u64, now: u64, n: u64) -> (u64, u64) {
        let mut admitted = 0;
        for _ in 0..n {
            let o = check(g, tat, now, 1);
            if o.allowed {
                admitted += 1;
                tat = o.tat;
            }
        }
        (admitted, tat)
    }

    #[test]
    fn a_fresh_key_admits_exactly_the_limit_even_when_the_window_does_not_divide() {
        for (limit, window) in [(5, 500), (3, 10), (7, 1), (100, 900_000), (1, 1)] {
            let g = gcra(limit, window);
            let (admitted, _) = burst(&g, 0, 1_000, limit * 3);
            assert_eq!(admitted, limit, "limit {limit} window {window}");
        }
    }

    #[test]
    fn remaining_counts_down_and_reset_grows() {
        let g = gcra(5, 500);
        let mut tat = 0;
        for expected in (0..5).rev() {
            let o = check(&g, tat, 1_000, 1);
            assert!(o.allowed);
            assert_eq!(o.remaining, expected);
            assert_eq!(o.reset_after, (5 - expected) * 100);
            tat = o.tat;
        }
        let refused = check(&g, tat, 1_000, 1);
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 0);
        assert_eq!(refused.tat, tat, "a refusal leaves the state unchanged");
        assert_eq!(refused.retry_after, Some(100));
        assert_eq!(refused.reset_after, 500);
    }

    #[test]
    fn allowance_replenishes_one_interval_at_a_time() {
        let g = gcra(5, 500);
        let (_, tat) = burst(&g, 0, 1_000, 5);
        assert!(!check(&g, tat, 1_099, 1).allowed);
        let o = check(&g, tat, 1_100, 1);
        assert!(o.allowed);
        assert_eq!(o.remaining, 0);
        let (admitted, _) = burst(&g, tat, 1_500, 10);
        assert_eq!(admitted, 5, "a full window later the whole burst is back");
    }

    #[test]
    fn weighted_costs_consume_several_intervals() {
        let g = gcra(10, 1_000);
        let o = check(&g, 0, 0, 4);
        assert!(o.allowed);
        assert_eq!(o.remaining, 6);
        let o = check(&g, o.tat, 0, 7);
        assert!(!o.allowed);
        assert_eq!(o.remaining, 6);
        assert_eq!(o.retry_after, Some(100));
    }

    #[test]
    fn bad_inputs_are_refused() {
        assert_eq!(
            Gcra::new(0, 10)
                .err()
                .and_then(|e| e.field().map(str::to_owned)),
            Some("rate_limit.limit".to_owned())
        );
        assert!(Gcra::new(1, 0).is_err());
        let g = gcra(3, 30);
        assert_eq!(
            g.check(0, 0, 0)
                .err()
                .and_then(|e| e.field().map(str::to_owned)),
            Some("cost".to_owned())
        );
        assert!(g.check(0, 0, 4).is_err());
        let bad = RateLimit {
            limit: 1,
            window_ms: 0,
        };
        assert!(Gcra::from_rate_limit_nanos(&bad).is_err());
    }

    #[test]
    fn a_tat_from_a_larger_limit_never_underflows() {
        let big = gcra(1_000, 1_000);
        let (_, tat) = burst(&big, 0, 0, 1_000);
        let small = gcra(2, 1_000);
        let o = check(&small, tat, 0, 1);
        assert!(!o.allowed);
        assert_eq!(o.remaining, 0);
        assert_eq!(o.retry_after, Some(500));
    }

    #[test]
    fn extreme_values_saturate_instead_of_overflowing() {
        let g = gcra(u64::MAX, u64::MAX);
        let o = check(&g, u64::MAX, u64::MAX, u64::MAX);
        assert!(o.allowed);
        assert_eq!((o.tat, o.remaining), (u64::MAX, 0));
        let g = gcra(1, u64::MAX);
        let o = check(&g, 0, u64::MAX, 1);
        assert!(o.allowed);
        assert_eq!(o.tat, u64::MAX);
        let d = o.decision(1, Duration::from_secs(1));
        assert_eq!(d.reset_after, Duration::from_nanos(u64::MAX));
    }

    #[test]
    fn nanosecond_rates_convert_to_decisions() {
        let rate = RateLimit {
            limit: 4,
            window_ms: 1_000,
        };
        let g = Gcra::from_rate_limit_nanos(&rate).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(g.emission_interval(), 250_000_000);
        let d = check(&g, 0, 0, 1).decision(g.limit(), Duration::from_nanos(1));
        assert!(d.allowed);
        assert_eq!((d.limit, d.remaining), (4, 3));
        assert_eq!(d.reset_after, Duration::from_millis(250));
        assert_eq!(d.retry_after, None);
    }

    proptest! {
        /// Over any run of requests, admissions never exceed the burst plus what the elapsed
        /// time replenished, and a refusal's retry_after is exactly when it would be admitted.
        #[test]
        fn admissions_stay_within_burst_plus_elapsed_and_retry_after_is_exact(
            limit in 1u64..50,
            window in 1u64..10_000,
            steps in proptest::collection::vec((0u64..300, 1u64..4), 1..200),
        ) {
            let g = gcra(limit, window);
            let (mut tat, mut now, mut admitted) = (0u64, 10_000u64, 0u64);
            let start = now;
            for (advance, cost) in steps {
                now += advance;
                let cost = cost.min(limit);
                let o = check(&g, tat, now, cost);
                if o.allowed {
                    admitted += cost;
                    tat = o.tat;
                } else {
                    let retry = o.retry_after.unwrap_or(0);
                    prop_assert!(retry > 0);
                    prop_assert!(check(&g, tat, now + retry, cost).allowed);
                    prop_assert!(!check(&g, tat, now + retry - 1, cost).allowed);
                }
                prop_assert!(o.remaining <= limit);
                let replenished = (now - start) / g.emission_interval();
                prop_assert!(admitted <= limit + replenished);
            }
        }
    }
}
