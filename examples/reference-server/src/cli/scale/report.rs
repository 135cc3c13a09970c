//! The scale run's report: what it measured (JSON as written, and a table for a terminal) and
//! which invariants it broke.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::load::{Latency, Phase};
use super::migrate::FleetResult;
use super::probe::Peaks;

const MIB: f64 = 1024.0 * 1024.0;

/// The registration phase.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RegistrationReport {
    /// Tenants registered.
    pub(crate) registered: usize,
    /// Registrations that failed.
    pub(crate) failed: usize,
    /// The first few of their errors.
    pub(crate) errors: Vec<String>,
    /// Of each isolation.
    pub(crate) database: u32,
    /// Schema tenants.
    pub(crate) schema: u32,
    /// Shared (row-level) tenants.
    pub(crate) shared: u32,
    /// Registrations in flight at once.
    pub(crate) concurrency: usize,
    /// Wall time, seconds.
    pub(crate) seconds: f64,
    /// Tenants per second.
    pub(crate) rate_per_second: f64,
    /// Latency of one registration.
    pub(crate) latency: Latency,
    /// Tenants on each server, from the server's `database_server_tenants`.
    pub(crate) placement: BTreeMap<String, f64>,
    /// 1-minute load average at the end.
    pub(crate) load_average: f64,
    /// Connections during the phase.
    pub(crate) connections: Peaks,
}

/// A load phase with its connection peaks and the server's memory at its end.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LoadReport {
    /// Name of the phase.
    pub(crate) name: String,
    /// What the clients measured.
    #[serde(flatten)]
    pub(crate) phase: Phase,
    /// Connections during the phase.
    pub(crate) connections: Peaks,
    /// The server's resident memory at the end, MiB.
    pub(crate) rss_mib: f64,
}

/// The server's memory.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct MemoryReport {
    /// Resident memory after start-up, before any tenant, MiB.
    pub(crate) idle_mib: f64,
    /// After the registrations, MiB.
    pub(crate) after_registration_mib: f64,
    /// After the load over the small set, MiB.
    pub(crate) small_set_mib: f64,
    /// After the load over every tenant (all of them in the server's cache), MiB.
    pub(crate) all_tenants_mib: f64,
    /// Peak resident memory of the process (`VmHWM`), MiB.
    pub(crate) peak_mib: f64,
    /// (all tenants - small set) / (tenants - small set) * 1,000, MiB.
    pub(crate) per_1000_tenants_mib: f64,
}

impl MemoryReport {
    /// From byte readings; `tenants` in all, `small` in the small set.
    pub(crate) fn new(bytes: [u64; 5], tenants: usize, small: usize) -> Self {
        let mib = |b: u64| b as f64 / MIB;
        let extra = tenants.saturating_sub(small).max(1) as f64;
        Self {
            idle_mib: mib(bytes[0]),
            after_registration_mib: mib(bytes[1]),
            small_set_mib: mib(bytes[2]),
            all_tenants_mib: mib(bytes[3]),
            peak_mib: mib(bytes[4]),
            per_1000_tenants_mib: (mib(bytes[3]) - mib(bytes[2])) / extra * 1000.0,
        }
    }
}

/// Everything a scale run measured.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ScaleReport {
    /// The run's tag (in every database and role name it created).
    pub(crate) tag: String,
    /// `MAX_TOTAL_CONNECTIONS` of the server.
    pub(crate) connection_budget: u32,
    /// Cores of the machine.
    pub(crate) cores: usize,
    /// 1-minute load average at the start.
    pub(crate) load_average_start: f64,
    /// The registration phase.
    pub(crate) registration: RegistrationReport,
    /// The load phases: the small set, every tenant, the small set again.
    pub(crate) load: Vec<LoadReport>,
    /// p99 over every tenant / p99 over the small set (first phase).
    pub(crate) p99_ratio: f64,
    /// The server's memory.
    pub(crate) memory: MemoryReport,
    /// The fleet migration.
    pub(crate) migration: FleetResult,
    /// Connections during the migration.
    pub(crate) migration_connections: Peaks,
    /// Connections over the whole run.
    pub(crate) connections: Peaks,
    /// Invariants the run broke (empty: none).
    pub(crate) violations: Vec<String>,
}

impl ScaleReport {
    /// The broken invariants: every tenant registered, the tenant connections never above
    /// the budget, every tenant reached by the last load over all of them and by the
    /// migration, and at most 1 % failed requests.
    pub(crate) fn check(&mut self, tenants: usize) {
        let mut v = Vec::new();
        if self.registration.registered != tenants {
            v.push(format!(
                "{} of {tenants} tenants registered; first errors: {}",
                self.registration.registered,
                self.registration.errors.join("; ")
            ));
        }
        let placed: f64 = self.registration.placement.values().sum();
        if placed + 0.5 < self.registration.registered as f64 {
            v.push(format!(
                "the server places {placed} tenants, fewer than the {} registered",
                self.registration.registered
            ));
        }
        if self
            .registration
            .placement
            .values()
            .filter(|n| **n > 0.0)
            .count()
            < 2
        {
            v.push("tenants are not on both servers".to_owned());
        }
        if self.connections.tenant_total > i64::from(self.connection_budget) {
            v.push(format!(
                "{} tenant connections at once, above the budget of {}",
                self.connections.tenant_total, self.connection_budget
            ));
        }
        for phase in &self.load {
            let p = &phase.phase;
            if p.errors * 100 > p.ok + p.errors {
                v.push(format!(
                    "{}: {} of {} requests failed",
                    phase.name,
                    p.errors,
                    p.ok + p.errors
                ));
            }
            if p.tenants_reached != p.tenants {
                v.push(format!(
                    "{}: {} of {} tenants reached",
                    phase.name, p.tenants_reached, p.tenants
                ));
            }
        }
        let m = &self.migration;
        let active = self.registration.registered;
        if m.behind_before != active || m.succeeded != active || m.failed > 0 || m.behind_after > 0
        {
            v.push(format!(
                "migration: {} behind before, {} migrated, {} failed, {} behind after, of {active}",
                m.behind_before, m.succeeded, m.failed, m.behind_after
            ));
        }
        self.violations = v;
    }

    /// A table for a terminal.
    pub(crate) fn to_table(&self) -> String {
        let mut out = String::new();
        let r = &self.registration;
        let _ = writeln!(
            out,
            "scale run {}: {} tenants registered, {} failed (asked: {} database, {} schema, {} shared), placement {:?}",
            self.tag, r.registered, r.failed, r.database, r.schema, r.shared, r.placement
        );
        let _ = writeln!(
            out,
            "registration: {:.1} tenants/s ({:.1} s, {} at once), p50 {:.1} ms, p99 {:.1} ms, load {:.2}",
            r.rate_per_second,
            r.seconds,
            r.concurrency,
            r.latency.p50_ms,
            r.latency.p99_ms,
            r.load_average
        );
        let _ = writeln!(
            out,
            "{:<22} {:>7} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7} {:>9} {:>6}",
            "load phase",
            "tenants",
            "seconds",
            "req/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "errors",
            "conn peak",
            "load"
        );
        for l in &self.load {
            let p = &l.phase;
            let _ = writeln!(
                out,
                "{:<22} {:>7} {:>8.1} {:>9.1} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7} {:>9} {:>6.2}",
                l.name,
                p.tenants,
                p.seconds,
                p.rate_rps,
                p.latency.p50_ms,
                p.latency.p90_ms,
                p.latency.p99_ms,
                p.latency.max_ms,
                p.errors,
                l.connections.tenant_total,
                p.load_average
            );
        }
        let _ = writeln!(
            out,
            "p99 every tenant / p99 small set: {:.2}",
            self.p99_ratio
        );
        let m = &self.memory;
        let _ = writeln!(
            out,
            "server RSS: idle {:.1} MiB, after registration {:.1}, small set {:.1}, every tenant {:.1}, peak {:.1}; {:.2} MiB per 1,000 tenants",
            m.idle_mib,
            m.after_registration_mib,
            m.small_set_mib,
            m.all_tenants_mib,
            m.peak_mib,
            m.per_1000_tenants_mib
        );
        let f = &self.migration;
        let _ = writeln!(
            out,
            "fleet migration: {} tenants in {:.1} s ({:.1} tenants/s, {} at once), {} failed, {} behind after, load {:.2}",
            f.succeeded,
            f.seconds,
            f.rate_per_second,
            f.concurrency,
            f.failed,
            f.behind_after,
            f.load_average
        );
        let c = &self.connections;
        let _ = writeln!(
            out,
            "tenant connections peak: {} (budget {}; {} + {} per server), {} samples; all client backends peak {} + {}",
            c.tenant_total,
            self.connection_budget,
            c.tenant_per_server[0],
            c.tenant_per_server[1],
            c.samples,
            c.backends_per_server[0],
            c.backends_per_server[1]
        );
        if self.violations.is_empty() {
            let _ = writeln!(out, "invariants: all held");
        } else {
            for v in &self.violations {
                let _ = writeln!(out, "VIOLATED: {v}");
            }
        }
        out
    }
}
