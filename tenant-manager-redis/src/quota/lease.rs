//! [`RateLeaseConfig`]: how much of a rate limit one instance may lease at once, and for how
//! long.

use std::time::Duration;

use tenant_manager_core::{Error, Result};

/// Leased rate limits of [`RedisQuotaEnforcer`](crate::RedisQuotaEnforcer) (see
/// [`RedisQuotaEnforcer::with_rate_leases`](crate::RedisQuotaEnforcer::with_rate_leases)).
///
/// Instead of one script per check, an instance claims several cells of a key's GCRA
/// allowance in one script call (advancing the key's TAT by that many intervals, on the
/// server's clock, in the same key the per-request script uses) and admits requests from them
/// in process until they are used up or the lease expires. A refusal with nothing left is
/// remembered until one cell is due (at most one interval), so traffic over the limit costs
/// no round trip either.
///
/// # Lease size
/// A lease takes at most `N = min(max_cells, max(1, ⌊limit / limit_divisor⌋))` cells: one
/// cell (the per-request behaviour) while the limit is below `limit_divisor`. Within that cap
/// the size adapts per key and instance: it starts at 1, doubles each time a lease is used up
/// before it expires, and falls back to the cells actually used when a lease expires with
/// cells left, so a slow key leases little.
///
/// # Bound
/// With `L` the limit, `T` its emission interval (`window / L`, rounded up to a microsecond),
/// `D` the lease `ttl` and `I` the instances checking the key, for requests of cost 1:
///
/// - over any span of time `τ`, at most `L + ⌊τ/T⌋ + E` requests are admitted, with
///   `E = min(I × N, ⌈D/T⌉)`. The per-request script admits at most `L + ⌊τ/T⌋` (the
///   burst, then one per interval); the excess `E` is the cells instances already held
///   when the span began (at most `N` each, in hand or in flight), and at most what Redis
///   granted in the `D` before it (a cell is never taken later than `D` after its claim
///   was sent).
/// - in a fresh window (nothing leased or used for the key before), `E = 0`: exactly as the
///   per-request script, at most `L` at once, whatever the number of instances.
/// - requests of cost `c` may each hold `c − 1` more cells: replace `N` by `N + c − 1`.
///
/// When demand exceeds the limit, what is admitted falls short of the per-request script
/// only by cells that went unused: those an instance still holds when its demand stops, and
/// those of a lease that expired before they were used and could not be given back (at most
/// `N` per instance and expiry). Unused cells of an expired lease are given back when the
/// instance next claims for that key, and only if no other claim on the key came in between
/// (then the give-back restores exactly the state the used cells alone would have left);
/// otherwise they return as the allowance replenishes, within `N × T`.
///
/// Leases are timed on the local monotonic clock from before the claim is sent, grants on the
/// server's clock; the bound assumes both run at the same rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLeaseConfig {
    /// Most cells one lease claims (default 64).
    pub max_cells: u32,
    /// A lease claims at most `limit / limit_divisor` cells (at least 1); default 100, so each
    /// instance holds at most 1 % of a limit. At least 2.
    pub limit_divisor: u32,
    /// How long the cells of a lease may be used after the claim was sent (default 1 s).
    pub ttl: Duration,
}

impl Default for RateLeaseConfig {
    /// 64 cells at most, at most 1 % of the limit, used within 1 s.
    fn default() -> Self {
        Self {
            max_cells: 64,
            limit_divisor: 100,
            ttl: Duration::from_secs(1),
        }
    }
}

impl RateLeaseConfig {
    /// Largest accepted `max_cells`.
    pub const MAX_CELLS: u32 = 1_000_000;
    /// Longest accepted `ttl`.
    pub const MAX_TTL: Duration = Duration::from_secs(60);

    /// Sets the most cells one lease claims.
    #[must_use]
    pub fn with_max_cells(mut self, cells: u32) -> Self {
        self.max_cells = cells;
        self
    }

    /// Sets the divisor of the limit that caps a lease.
    #[must_use]
    pub fn with_limit_divisor(mut self, divisor: u32) -> Self {
        self.limit_divisor = divisor;
        self
    }

    /// Sets how long leased cells may be used.
    #[must_use]
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Checks every field.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `rate_lease.max_cells` (1 to 1,000,000),
    /// `rate_lease.limit_divisor` (2 to 1,000,000) or `rate_lease.ttl` (1 ms to 60 s).
    pub fn validate(&self) -> Result<()> {
        if !(1..=Self::MAX_CELLS).contains(&self.max_cells) {
            return Err(Error::invalid(
                "rate_lease.max_cells",
                "must be 1 to 1,000,000",
            ));
        }
        if !(2..=1_000_000).contains(&self.limit_divisor) {
            return Err(Error::invalid(
                "rate_lease.limit_divisor",
                "must be 2 to 1,000,000 (a lease is at most half the limit)",
            ));
        }
        if self.ttl < Duration::from_millis(1) || self.ttl > Self::MAX_TTL {
            return Err(Error::invalid(
                "rate_lease.ttl",
                "must be between 1 ms and 60 s",
            ));
        }
        Ok(())
    }

    /// The most cells one lease of `limit` claims: `N` of the bound.
    pub fn cap(&self, limit: u64) -> u64 {
        (limit / u64::from(self.limit_divisor.max(1))).clamp(1, u64::from(self.max_cells.max(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_a_share_of_the_limit_within_max_cells() {
        let config = RateLeaseConfig::default();
        assert_eq!(config.cap(1), 1);
        assert_eq!(config.cap(199), 1);
        assert_eq!(config.cap(200), 2);
        assert_eq!(config.cap(5_000), 50);
        assert_eq!(config.cap(1_000_000_000), 64);
        assert_eq!(config.with_limit_divisor(2).cap(5), 2);
    }

    #[test]
    fn bad_settings_name_their_field() {
        let field = |c: RateLeaseConfig| {
            c.validate()
                .err()
                .and_then(|e| e.field().map(str::to_owned))
        };
        let ok = RateLeaseConfig::default();
        assert!(ok.validate().is_ok());
        assert_eq!(
            field(ok.with_max_cells(0)).as_deref(),
            Some("rate_lease.max_cells")
        );
        assert_eq!(
            field(ok.with_limit_divisor(1)).as_deref(),
            Some("rate_lease.limit_divisor")
        );
        assert_eq!(
            field(ok.with_ttl(Duration::ZERO)).as_deref(),
            Some("rate_lease.ttl")
        );
        assert_eq!(
            field(ok.with_ttl(Duration::from_secs(61))).as_deref(),
            Some("rate_lease.ttl")
        );
    }
}
