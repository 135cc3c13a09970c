//! Latency summaries of the scale run: HDR histograms of microseconds, reported in ms.

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::cli::exit::{CliError, Exit};

/// An empty histogram of 1 µs to 10 min, 3 significant digits.
///
/// # Errors
/// [`CliError`] if the bounds were refused (they are constants that hdrhistogram accepts).
pub(crate) fn histogram() -> Result<Histogram<u64>, CliError> {
    Histogram::new_with_bounds(1, 600_000_000, 3)
        .map_err(|e| CliError::new(Exit::Failure, format!("histogram: {e}")))
}

/// Percentiles of a histogram, milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Latency {
    /// Samples.
    pub(crate) count: u64,
    /// Median.
    pub(crate) p50_ms: f64,
    /// 90th percentile.
    pub(crate) p90_ms: f64,
    /// 99th percentile.
    pub(crate) p99_ms: f64,
    /// Slowest.
    pub(crate) max_ms: f64,
}

impl Latency {
    /// The summary of `h` (microsecond samples).
    pub(crate) fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }
}
