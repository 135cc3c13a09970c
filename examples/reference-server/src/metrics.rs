//! Prometheus exporter: the recorder, the description of every series, the gauges sampled
//! on each scrape.
//!
//! The toolkit's crates record through the `metrics` facade; this module describes every
//! series they and the server emit (one table, [`SERIES`]), so each carries `# HELP` and
//! the output passes `promtool check metrics`.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Unit, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tenant_manager::{JobQueue, TenantStatus};

use crate::config::Config;
use crate::services::Services;

/// Buckets of every `*_seconds` histogram: 5 ms to 10 s, with 2 s (the guide's slow-response
/// alert threshold) as a bucket edge.
const SECONDS_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0,
];

#[derive(Debug, Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every series: name, kind, and help text. Seconds histograms get the unit `seconds`.
const SERIES: &[(&str, Kind, &str)] = &[
    // The guide's series.
    ("active_tenants", Kind::Gauge, "Tenants in status active."),
    (
        "api_requests_total",
        Kind::Counter,
        "API requests answered, by method, route and status.",
    ),
    (
        "api_response_time_seconds",
        Kind::Histogram,
        "API response time, by method and route.",
    ),
    (
        "database_connections_total",
        Kind::Counter,
        "Database connections opened by the pool manager since start.",
    ),
    (
        "database_connections",
        Kind::Gauge,
        "Open database connections of the tenant pools, by state (idle, in_use).",
    ),
    (
        "cache_hit_rate",
        Kind::Gauge,
        "Tenant cache hits divided by lookups (0 to 1).",
    ),
    // Server.
    ("tenants", Kind::Gauge, "Tenants by life-cycle status."),
    (
        "database_server_tenants",
        Kind::Gauge,
        "Tenants (all but deleted) placed on each Postgres server (label server).",
    ),
    (
        "database_server_capacity",
        Kind::Gauge,
        "Most tenants each Postgres server takes (TENANT_SERVERS capacity; absent when unbounded).",
    ),
    (
        "database_connections_max",
        Kind::Gauge,
        "Most database connections all tenants may hold (MAX_TOTAL_CONNECTIONS).",
    ),
    (
        "jobs",
        Kind::Gauge,
        "Queued jobs, by state (ready, in_flight, dead).",
    ),
    // Pool engine.
    (
        "tenant_pools_open",
        Kind::Gauge,
        "Tenant connection pools open.",
    ),
    (
        "tenant_pool_evictions_total",
        Kind::Counter,
        "Idle connections closed to make room for another tenant's pool.",
    ),
    (
        "tenant_pool_idle_closed_total",
        Kind::Counter,
        "Tenant pools closed after sitting idle.",
    ),
    (
        "tenant_pool_waits_total",
        Kind::Counter,
        "Connection acquires that waited for the global budget.",
    ),
    (
        "tenant_pool_timeouts_total",
        Kind::Counter,
        "Connection acquires that gave up because the pool was exhausted.",
    ),
    // Manager and provisioning.
    (
        "tenant_logins_total",
        Kind::Counter,
        "Login attempts, by result (success, failure, refused).",
    ),
    (
        "tenant_provisioning_total",
        Kind::Counter,
        "Tenant provisioning runs, by result.",
    ),
    (
        "tenant_deprovisioning_total",
        Kind::Counter,
        "Tenant deprovisioning runs, by result.",
    ),
    (
        "tenant_job_leases_lost_total",
        Kind::Counter,
        "Running jobs whose queue lease was taken over by another worker.",
    ),
    (
        "tenant_provisioning_duration_seconds",
        Kind::Histogram,
        "Time to provision a tenant's storage.",
    ),
    (
        "tenant_provision_seconds",
        Kind::Histogram,
        "Time the Postgres provisioner took per tenant, by isolation.",
    ),
    (
        "tenant_provision_step_seconds",
        Kind::Histogram,
        "Time of each Postgres provisioning step.",
    ),
    (
        "tenant_provision_failures_total",
        Kind::Counter,
        "Postgres provisioning steps that failed, by step.",
    ),
    (
        "tenant_templates_built_total",
        Kind::Counter,
        "Template databases built for fast provisioning.",
    ),
    (
        "tenant_migrations_total",
        Kind::Counter,
        "Tenant migrations run by the fleet migrator, by outcome.",
    ),
    (
        "tenant_manager_schema_drift_tenants",
        Kind::Gauge,
        "Tenants whose schema differs from their migration version's, as of the last drift check.",
    ),
    (
        "tenant_manager_schema_drift_objects",
        Kind::Gauge,
        "Objects that differ from the migration versions' schemas, by kind, as of the last drift check.",
    ),
    (
        "tenant_manager_schema_drift_check_failures",
        Kind::Gauge,
        "Tenant storages the last drift check could not read.",
    ),
    // Backups.
    (
        "tenant_backups_total",
        Kind::Counter,
        "Tenant backups taken, by isolation.",
    ),
    (
        "tenant_backup_seconds",
        Kind::Histogram,
        "Time to back up one tenant, by isolation.",
    ),
    (
        "tenant_restores_total",
        Kind::Counter,
        "Tenant restores, by isolation.",
    ),
    (
        "tenant_backups_due",
        Kind::Gauge,
        "Tenants whose plan's backup schedule was due at the last scheduler pass of this instance.",
    ),
    (
        "tenant_backups_scheduled_started_total",
        Kind::Counter,
        "Scheduled backups started by this instance.",
    ),
    (
        "tenant_backups_scheduled_total",
        Kind::Counter,
        "Scheduled backups finished by this instance, by outcome (ok, failed).",
    ),
    (
        "tenant_backups_pruned_total",
        Kind::Counter,
        "Backups deleted by retention (scheduled, admin route or CLI).",
    ),
    (
        "tenant_backup_verifications_total",
        Kind::Counter,
        "Backups restore-tested.",
    ),
    (
        "tenant_backup_verify_failed",
        Kind::Gauge,
        "Backups that failed the last restore test run by this instance.",
    ),
    (
        "tenant_backup_verify_last_timestamp_seconds",
        Kind::Gauge,
        "When this instance last ran a restore test (Unix seconds).",
    ),
    (
        "tenant_backup_restore_tests_total",
        Kind::Counter,
        "Backups restored into scratch storage by a restore test, by isolation.",
    ),
    (
        "tenant_manager_schema_drift_checked_timestamp_seconds",
        Kind::Gauge,
        "When this instance last finished a periodic drift check (Unix seconds).",
    ),
    // Quotas, cache, queue.
    (
        "quota_rejections_total",
        Kind::Counter,
        "Requests refused by a rate limit, by scope (tenant, client).",
    ),
    (
        "quota_backend_errors_total",
        Kind::Counter,
        "Rate-limit checks that failed at the enforcer, by scope and outcome.",
    ),
    (
        "quota_rate_checks_total",
        Kind::Counter,
        "Rate-limit checks of the Redis enforcer (leased or one script each), by outcome.",
    ),
    (
        "quota_rate_lease_claims_total",
        Kind::Counter,
        "Rate budget leases claimed from Redis, by outcome (granted, refused).",
    ),
    (
        "quota_rate_lease_cells_total",
        Kind::Counter,
        "Unused cells of expired rate leases, by outcome (given_back, lost).",
    ),
    (
        "quota_usage_denied_total",
        Kind::Counter,
        "Usage quota consumptions refused, by kind.",
    ),
    (
        "tenant_cache_lookups_total",
        Kind::Counter,
        "Tenant cache lookups in Redis, by result.",
    ),
    (
        "job_queue_enqueued_total",
        Kind::Counter,
        "Jobs enqueued in Redis.",
    ),
    (
        "job_queue_acked_total",
        Kind::Counter,
        "Jobs acknowledged as done.",
    ),
    (
        "job_queue_dead_lettered_total",
        Kind::Counter,
        "Jobs moved to the dead-letter list.",
    ),
    // Process.
    (
        "process_uptime_seconds",
        Kind::Gauge,
        "Seconds since the process started.",
    ),
    // Tenant events and webhooks.
    (
        "tenant_events_published_total",
        Kind::Counter,
        "Tenant events published on the event bus, by kind.",
    ),
    (
        "tenant_events_publish_failures_total",
        Kind::Counter,
        "Tenant events whose publishing failed (the change itself stood), by kind.",
    ),
    (
        "tenant_events_dead_lettered_total",
        Kind::Counter,
        "Tenant events moved to a consumer group's dead letters, by group.",
    ),
    (
        "tenant_manager_webhook_deliveries_total",
        Kind::Counter,
        "Webhook delivery attempts, by endpoint and outcome (delivered, failed, dead_lettered).",
    ),
];

fn describe() {
    for (name, kind, help) in SERIES {
        let unit = name.ends_with("_seconds").then_some(Unit::Seconds);
        match (kind, unit) {
            (Kind::Counter, _) => metrics::describe_counter!(*name, *help),
            (Kind::Gauge, Some(unit)) => metrics::describe_gauge!(*name, unit, *help),
            (Kind::Gauge, None) => metrics::describe_gauge!(*name, *help),
            (Kind::Histogram, Some(unit)) => metrics::describe_histogram!(*name, unit, *help),
            (Kind::Histogram, None) => metrics::describe_histogram!(*name, *help),
        }
    }
    // Resting values, so a scrape right after start shows the guide's whole set.
    gauge!("active_tenants").set(0.0);
    gauge!("cache_hit_rate").set(1.0);
    gauge!("database_connections", "state" => "idle").set(0.0);
    gauge!("database_connections", "state" => "in_use").set(0.0);
    metrics::counter!("database_connections_total").increment(0);
}

/// The process-wide Prometheus recorder, installed on first use.
///
/// The `metrics` facade has one global recorder per process; building a second
/// [`App`](crate::App) in the same process (as in-process tests do) reuses it.
pub(crate) fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!(
                    "a metrics recorder was already installed; /metrics shows only this recorder's series"
                );
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

/// How long the registry and queue may take to answer for one scrape.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(2);

/// Samples the gauges that are read rather than recorded: process series, tenants by status,
/// cache hit rate, queue depth and the connection cap. A backend that does not answer leaves
/// its gauges as they were.
pub(crate) async fn sample(services: &Services, config: &Config) {
    process_collector().collect();
    services.lookup.record_metrics();
    gauge!("database_connections_max").set(f64::from(config.pool.max_total));
    sample_servers(services, config).await;
    let registry = services.lookup.registry();
    for status in TenantStatus::ALL {
        match tokio::time::timeout(SAMPLE_TIMEOUT, registry.count_tenants(Some(status))).await {
            Ok(Ok(count)) => {
                let count = count as f64;
                gauge!("tenants", "status" => status.as_str()).set(count);
                if status == TenantStatus::Active {
                    gauge!("active_tenants").set(count);
                }
            }
            _ => {
                tracing::debug!(%status, "tenant count unavailable for metrics");
                break;
            }
        }
    }
    sample_jobs(services.jobs.as_ref()).await;
}

/// Tenants and capacity of each Postgres server of tenants (none in embedded mode).
async fn sample_servers(services: &Services, config: &Config) {
    let servers = config.database.tenant_servers();
    if servers.is_empty() {
        return;
    }
    let registry = services.lookup.registry();
    let counts =
        match tokio::time::timeout(SAMPLE_TIMEOUT, registry.count_tenants_by_server()).await {
            Ok(Ok(counts)) => counts,
            _ => {
                tracing::debug!("tenant counts per server unavailable for metrics");
                return;
            }
        };
    for server in servers {
        let id = server.spec.id.to_string();
        let tenants = counts.get(&server.spec.id).copied().unwrap_or(0);
        gauge!("database_server_tenants", "server" => id.clone()).set(tenants as f64);
        if let Some(capacity) = server.spec.capacity {
            gauge!("database_server_capacity", "server" => id).set(capacity as f64);
        }
    }
}

async fn sample_jobs(jobs: &dyn JobQueue) {
    if let Ok(Ok(stats)) = tokio::time::timeout(SAMPLE_TIMEOUT, jobs.stats()).await {
        gauge!("jobs", "state" => "ready").set(stats.ready as f64);
        gauge!("jobs", "state" => "in_flight").set(stats.in_flight as f64);
        gauge!("jobs", "state" => "dead").set(stats.dead as f64);
    }
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
                gauge!("process_uptime_seconds").set(started.elapsed().as_secs_f64());
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

    #[test]
    fn the_table_names_each_series_once_and_follows_conventions() {
        let mut names: Vec<&str> = SERIES.iter().map(|(n, _, _)| *n).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "a series is listed twice");
        for (name, kind, _) in SERIES {
            let is_total = name.ends_with("_total");
            assert_eq!(is_total, matches!(kind, Kind::Counter), "{name}");
        }
    }
}
