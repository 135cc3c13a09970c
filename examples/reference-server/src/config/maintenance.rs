//! Unattended maintenance: scheduled backups, restore tests and drift checks, each run by one
//! instance at a time.

use std::time::Duration;

/// How often the maintenance passes run; `None` is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct MaintenanceSettings {
    /// How often the backup scheduler looks for tenants whose plan's backup schedule is due
    /// (`BACKUP_SCHEDULE_INTERVAL_MS`; 0, the default, is off).
    pub backup_schedule: Option<Duration>,
    /// How often the newest backups of a sample of tenants are restore-tested
    /// (`BACKUP_VERIFY_INTERVAL_MS`; 0, the default, is off).
    pub backup_verify: Option<Duration>,
    /// Tenants sampled by each scheduled restore test (`BACKUP_VERIFY_SAMPLE`, default 3).
    pub backup_verify_sample: usize,
    /// How often the drift check runs and refreshes the `tenant_manager_schema_drift_*` gauges
    /// (`DRIFT_CHECK_INTERVAL_MS`; 0, the default, is off).
    pub drift_check: Option<Duration>,
}

impl MaintenanceSettings {
    /// Settings from the variables' milliseconds (0 is off).
    pub(super) fn from_ms(backup: u64, verify: u64, sample: usize, drift: u64) -> Self {
        let every = |ms: u64| (ms > 0).then(|| Duration::from_millis(ms));
        Self {
            backup_schedule: every(backup),
            backup_verify: every(verify),
            backup_verify_sample: sample,
            drift_check: every(drift),
        }
    }
}
