//! What is kept per monitored tenant besides its request count: errors and a small
//! fixed-bucket latency histogram that gives p50 and p99.

use std::time::Duration;

use crate::domain::TenantSlug;

/// Upper bounds (seconds) of the latency buckets; a last, open bucket holds what is slower.
pub const LATENCY_BOUNDS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Per-tenant payload of the sketch: the slug (for labels), errors and latencies seen since
/// the tenant was taken into the sketch, decayed with its count.
#[derive(Debug, Clone)]
pub(super) struct TenantStats {
    pub(super) slug: TenantSlug,
    pub(super) errors: u64,
    buckets: [u64; LATENCY_BOUNDS.len() + 1],
    /// Slowest response seen while monitored, in microseconds (reported for the open bucket).
    max_micros: u64,
}

impl TenantStats {
    pub(super) fn new(slug: TenantSlug) -> Self {
        Self {
            slug,
            errors: 0,
            buckets: [0; LATENCY_BOUNDS.len() + 1],
            max_micros: 0,
        }
    }

    pub(super) fn record(&mut self, error: bool, latency: Duration) {
        if error {
            self.errors = self.errors.saturating_add(1);
        }
        let seconds = latency.as_secs_f64();
        let at = LATENCY_BOUNDS.partition_point(|bound| *bound < seconds);
        if let Some(bucket) = self.buckets.get_mut(at) {
            *bucket = bucket.saturating_add(1);
        }
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.max_micros = self.max_micros.max(micros);
    }

    /// Halves the errors and the buckets, as the counts are halved each window.
    pub(super) fn halve(&mut self) {
        self.errors /= 2;
        for bucket in &mut self.buckets {
            *bucket /= 2;
        }
    }

    /// The latency at quantile `q` (0 to 1): the upper bound of the bucket it falls in, the
    /// slowest response seen for the open bucket; zero without samples.
    pub(super) fn quantile(&self, q: f64) -> f64 {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 {
            return 0.0;
        }
        // The rank of the sample at quantile q, 1-based: ceil(q * total), at least 1.
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0_u64;
        for (at, bucket) in self.buckets.iter().enumerate() {
            seen += bucket;
            if seen >= rank {
                return LATENCY_BOUNDS
                    .get(at)
                    .copied()
                    .unwrap_or(self.max_micros as f64 / 1e6);
            }
        }
        self.max_micros as f64 / 1e6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_bucket_bounds() {
        let slug = TenantSlug::new("acme").unwrap_or_else(|e| panic!("{e}"));
        let mut stats = TenantStats::new(slug);
        assert_eq!(stats.quantile(0.5), 0.0);
        for _ in 0..98 {
            stats.record(false, Duration::from_millis(3));
        }
        stats.record(true, Duration::from_millis(200));
        stats.record(true, Duration::from_secs(30));
        assert_eq!(stats.quantile(0.5), 0.005);
        assert_eq!(stats.quantile(0.99), 0.25);
        assert_eq!(stats.quantile(1.0), 30.0);
        assert_eq!(stats.errors, 2);
        stats.halve();
        assert_eq!(stats.errors, 1);
        assert_eq!(stats.quantile(0.5), 0.005);
    }
}
