//! Prometheus exporter: the recorder, the described series, and the `/metrics` answer.
//!
//! Every series the server and the toolkit emit is described here, so each one carries
//! `# HELP` and the output passes `promtool check metrics`.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Buckets of every `*_seconds` histogram: 5 ms to 10 s, with 2 s (the guide's slow-response
/// alert threshold) as a bucket edge.
const SECONDS_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0,
];

/// Series names of the deployment guide and the ones next to them.
pub(crate) mod names {
    /// Gauge: tenants in status `active`.
    pub(crate) const ACTIVE_TENANTS: &str = "active_tenants";
    /// Gauge: tenants by status (label `status`).
    pub(crate) const TENANTS: &str = "tenants";
    /// Counter: API requests (labels `method`, `route`, `status`).
    pub(crate) const API_REQUESTS_TOTAL: &str = "api_requests_total";
    /// Histogram: API response time (labels `method`, `route`).
    pub(crate) const API_RESPONSE_TIME_SECONDS: &str = "api_response_time_seconds";
    /// Counter: database connections opened by the pool manager.
    pub(crate) const DATABASE_CONNECTIONS_TOTAL: &str = "database_connections_total";
    /// Gauge: open database connections (label `state`: `idle`, `in_use`).
    pub(crate) const DATABASE_CONNECTIONS: &str = "database_connections";
    /// Gauge: the global connection cap.
    pub(crate) const DATABASE_CONNECTIONS_MAX: &str = "database_connections_max";
    /// Gauge: tenant pools open.
    pub(crate) const DATABASE_POOLS: &str = "database_pools";
    /// Counter: acquires that gave up with `pool_exhausted`.
    pub(crate) const DATABASE_POOL_TIMEOUTS_TOTAL: &str = "database_pool_timeouts_total";
    /// Counter: acquires that waited for the global budget.
    pub(crate) const DATABASE_POOL_WAITS_TOTAL: &str = "database_pool_waits_total";
    /// Counter: idle connections closed to make room for another tenant.
    pub(crate) const DATABASE_POOL_EVICTIONS_TOTAL: &str = "database_pool_evictions_total";
    /// Gauge: tenant cache hit rate (0 to 1).
    pub(crate) const CACHE_HIT_RATE: &str = "cache_hit_rate";
    /// Gauge: jobs by state (label `state`: `ready`, `in_flight`, `dead`).
    pub(crate) const JOBS: &str = "jobs";
    /// Counter: requests refused by a rate limit or quota (label `quota`).
    pub(crate) const QUOTA_EXCEEDED_TOTAL: &str = "quota_exceeded_total";
    /// Counter: provisioning runs finished (label `outcome`).
    pub(crate) const PROVISIONING_TOTAL: &str = "tenant_provisioning_total";
    /// Histogram: provisioning duration.
    pub(crate) const PROVISIONING_DURATION_SECONDS: &str = "tenant_provisioning_duration_seconds";
    /// Counter: backups taken (label `outcome`).
    pub(crate) const BACKUPS_TOTAL: &str = "tenant_backups_total";
    /// Gauge: seconds since the process started.
    pub(crate) const UPTIME_SECONDS: &str = "process_uptime_seconds";
}

/// Describes every series and sets the gauges to their resting values, so a scrape right
/// after start shows the whole set.
fn describe() {
    use names::*;
    describe_gauge!(ACTIVE_TENANTS, "Tenants in status active.");
    describe_gauge!(TENANTS, "Tenants by life-cycle status.");
    describe_counter!(API_REQUESTS_TOTAL, "API requests answered, by method, route and status.");
    describe_histogram!(
        API_RESPONSE_TIME_SECONDS,
        Unit::Seconds,
        "API response time, by method and route."
    );
    describe_counter!(
        DATABASE_CONNECTIONS_TOTAL,
        "Database connections opened by the pool manager since start."
    );
    describe_gauge!(DATABASE_CONNECTIONS, "Open database connections, by state (idle, in_use).");
    describe_gauge!(DATABASE_CONNECTIONS_MAX, "Most database connections all tenants may hold.");
    describe_gauge!(DATABASE_POOLS, "Tenant connection pools currently open.");
    describe_counter!(
        DATABASE_POOL_TIMEOUTS_TOTAL,
        "Connection acquires that gave up because the pool was exhausted."
    );
    describe_counter!(
        DATABASE_POOL_WAITS_TOTAL,
        "Connection acquires that had to wait for the global budget."
    );
    describe_counter!(
        DATABASE_POOL_EVICTIONS_TOTAL,
        "Idle connections closed to make room for another tenant."
    );
    describe_gauge!(CACHE_HIT_RATE, "Tenant cache hits divided by lookups (0 to 1).");
    describe_gauge!(JOBS, "Queued jobs, by state (ready, in_flight, dead).");
    describe_counter!(QUOTA_EXCEEDED_TOTAL, "Requests refused by a rate limit or quota.");
    describe_counter!(PROVISIONING_TOTAL, "Tenant provisioning runs finished, by outcome.");
    describe_histogram!(
        PROVISIONING_DURATION_SECONDS,
        Unit::Seconds,
        "Time to provision a tenant's storage."
    );
    describe_counter!(BACKUPS_TOTAL, "Tenant backups taken, by outcome.");
    describe_gauge!(UPTIME_SECONDS, Unit::Seconds, "Seconds since the process started.");

    gauge!(ACTIVE_TENANTS).set(0.0);
    gauge!(CACHE_HIT_RATE).set(1.0);
    gauge!(DATABASE_CONNECTIONS, "state" => "idle").set(0.0);
    gauge!(DATABASE_CONNECTIONS, "state" => "in_use").set(0.0);
    metrics::counter!(DATABASE_CONNECTIONS_TOTAL).absolute(0);
}

/// The process-wide Prometheus recorder, installed on first use.
///
/// The `metrics` facade has one global recorder per process; building a second [`App`]
/// in the same process (as in-process tests do) reuses it.
///
/// [`App`]: crate::App
pub(crate) fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new();
            let builder = builder
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics shows only this recorder's series");
            }
            describe();
            process_collector().describe();
            handle
        })
        .clone()
}

/// The collector of `process_*` series (CPU seconds, resident memory, open files, ...).
fn process_collector() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}

/// Samples the process series; called on each scrape.
pub(crate) fn collect_process() {
    process_collector().collect();
}

/// Runs the recorder's upkeep (histogram maintenance) every few seconds until cancelled.
pub(crate) async fn upkeep(handle: PrometheusHandle, stop: tokio_util::sync::CancellationToken) {
    let started = std::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {
                handle.run_upkeep();
                gauge!(names::UPTIME_SECONDS).set(started.elapsed().as_secs_f64());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_guide_series_is_described_after_install() {
        let text = handle().render();
        for series in [
            "active_tenants",
            "database_connections_total",
            "database_connections",
            "cache_hit_rate",
        ] {
            assert!(
                text.contains(&format!("# HELP {series} ")),
                "{series} not described in:\n{text}"
            );
            assert!(text.contains(&format!("# TYPE {series} ")), "{series}");
        }
        assert!(text.contains("# TYPE database_connections_total counter"));
        assert!(text.contains("database_connections{state=\"in_use\"} 0"));
    }
}
