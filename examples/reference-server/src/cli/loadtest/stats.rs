//! Latency and outcome counts per operation, and the printed report.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

/// What happened to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// 2xx.
    Ok,
    /// 429: refused by the rate limiter (expected under load; not an error).
    RateLimited,
    /// Any other status, or no answer.
    Error,
}

/// Samples of one operation.
#[derive(Debug, Default, Clone)]
pub(crate) struct Samples {
    /// Latency of every answered request, in microseconds.
    latencies_us: Vec<u32>,
    ok: u64,
    rate_limited: u64,
    errors: u64,
}

impl Samples {
    pub(crate) fn record(&mut self, latency: Duration, outcome: Outcome) {
        let us = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
        self.latencies_us.push(us);
        match outcome {
            Outcome::Ok => self.ok += 1,
            Outcome::RateLimited => self.rate_limited += 1,
            Outcome::Error => self.errors += 1,
        }
    }

    pub(crate) fn merge(&mut self, other: Samples) {
        self.latencies_us.extend(other.latencies_us);
        self.ok += other.ok;
        self.rate_limited += other.rate_limited;
        self.errors += other.errors;
    }

    fn total(&self) -> u64 {
        self.ok + self.rate_limited + self.errors
    }
}

/// All samples, by operation name.
#[derive(Debug, Default, Clone)]
pub(crate) struct Recorder {
    pub(crate) ops: BTreeMap<&'static str, Samples>,
}

impl Recorder {
    pub(crate) fn record(&mut self, op: &'static str, latency: Duration, outcome: Outcome) {
        self.ops.entry(op).or_default().record(latency, outcome);
    }

    pub(crate) fn merge(&mut self, other: Recorder) {
        for (op, samples) in other.ops {
            self.ops.entry(op).or_default().merge(samples);
        }
    }
}

/// Summary of one operation (or of all together).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OpReport {
    /// Requests sent.
    pub requests: u64,
    /// 2xx answers.
    pub ok: u64,
    /// 429 answers.
    pub rate_limited: u64,
    /// Other statuses and failures.
    pub errors: u64,
    /// Requests per second over the measured phase.
    pub throughput_rps: f64,
    /// Latency percentiles, milliseconds.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

/// The load test's result.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Length of the traffic phase, seconds.
    pub duration_seconds: f64,
    /// Tenants registered.
    pub tenants: usize,
    /// Concurrent clients.
    pub concurrency: usize,
    /// Per operation.
    pub operations: BTreeMap<String, OpReport>,
    /// Every operation of the traffic phase together.
    pub total: OpReport,
}

impl Report {
    /// Share of requests that failed (neither 2xx nor 429), 0 to 1.
    pub fn error_rate(&self) -> f64 {
        if self.total.requests == 0 {
            0.0
        } else {
            self.total.errors as f64 / self.total.requests as f64
        }
    }

    /// A fixed-width table for a terminal.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<22} {:>9} {:>9} {:>7} {:>7} {:>10} {:>9} {:>9} {:>9} {:>9}",
            "operation",
            "requests",
            "ok",
            "429",
            "errors",
            "req/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms"
        );
        let rows = self
            .operations
            .iter()
            .map(|(k, v)| (k.as_str(), v))
            .chain(std::iter::once(("TOTAL (traffic phase)", &self.total)));
        for (name, r) in rows {
            let _ = writeln!(
                out,
                "{:<22} {:>9} {:>9} {:>7} {:>7} {:>10.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                name,
                r.requests,
                r.ok,
                r.rate_limited,
                r.errors,
                r.throughput_rps,
                r.p50_ms,
                r.p90_ms,
                r.p99_ms,
                r.max_ms
            );
        }
        let _ = writeln!(
            out,
            "\n{} tenants, {} clients, {:.1} s of traffic, error rate {:.3}%",
            self.tenants,
            self.concurrency,
            self.duration_seconds,
            self.error_rate() * 100.0
        );
        out
    }
}

/// The `q` quantile (0 to 1) of sorted values, nearest-rank.
fn quantile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    f64::from(sorted[index]) / 1000.0
}

/// Summarises samples measured over `elapsed`.
pub(crate) fn summarise(mut samples: Samples, elapsed: Duration) -> OpReport {
    samples.latencies_us.sort_unstable();
    let secs = elapsed.as_secs_f64().max(1e-9);
    let l = &samples.latencies_us;
    OpReport {
        requests: samples.total(),
        ok: samples.ok,
        rate_limited: samples.rate_limited,
        errors: samples.errors,
        throughput_rps: samples.total() as f64 / secs,
        p50_ms: quantile(l, 0.50),
        p90_ms: quantile(l, 0.90),
        p99_ms: quantile(l, 0.99),
        max_ms: quantile(l, 1.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut samples = Samples::default();
        for ms in 1..=100u64 {
            samples.record(Duration::from_millis(ms), Outcome::Ok);
        }
        samples.record(Duration::from_millis(1), Outcome::RateLimited);
        samples.record(Duration::from_millis(1), Outcome::Error);
        let r = summarise(samples, Duration::from_secs(2));
        assert_eq!(
            (r.requests, r.ok, r.rate_limited, r.errors),
            (102, 100, 1, 1)
        );
        assert!((r.throughput_rps - 51.0).abs() < 1e-9);
        // Sorted: 1, 1, 1, 2, 3, ... 100 (the two extra samples took 1 ms).
        assert!((r.p50_ms - 49.0).abs() < 1e-9, "{}", r.p50_ms);
        assert!((r.p99_ms - 99.0).abs() < 1e-9, "{}", r.p99_ms);
        assert!((r.max_ms - 100.0).abs() < 1e-9);
        assert_eq!(summarise(Samples::default(), Duration::ZERO).p99_ms, 0.0);
    }

    #[test]
    fn recorders_merge_by_operation() {
        let mut a = Recorder::default();
        a.record("login", Duration::from_millis(3), Outcome::Ok);
        let mut b = Recorder::default();
        b.record("login", Duration::from_millis(5), Outcome::Error);
        b.record("list", Duration::from_millis(1), Outcome::Ok);
        a.merge(b);
        assert_eq!(a.ops["login"].total(), 2);
        assert_eq!(a.ops["list"].total(), 1);
    }
}
