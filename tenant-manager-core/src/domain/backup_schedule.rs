//! [`BackupSchedule`]: how often a plan's tenants are backed up and which backups are kept.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Most days or ISO weeks a schedule keeps (ten years of weeks).
pub const MAX_RETENTION_SLOTS: u32 = 520;

/// Shortest backup interval: one second (tests run short ones; production ones are hours).
pub const MIN_BACKUP_INTERVAL_MS: u64 = 1_000;

/// Longest backup interval: 366 days.
pub const MAX_BACKUP_INTERVAL_MS: u64 = 366 * 24 * 3600 * 1000;

/// A plan's backup schedule: a tenant whose newest backup is older than `interval_ms` is due
/// for one; after each scheduled backup the tenant's backups are pruned to the newest of each
/// of the last `keep_daily` UTC days and `keep_weekly` ISO weeks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BackupSchedule {
    /// Longest age of a tenant's newest backup, in milliseconds (1 s to 366 days).
    pub interval_ms: u64,
    /// Days whose newest backup is kept (0 to 520).
    pub keep_daily: u32,
    /// ISO weeks whose newest backup is kept (0 to 520; not both 0).
    pub keep_weekly: u32,
}

impl BackupSchedule {
    /// A validated schedule.
    ///
    /// # Errors
    /// As [`validate`](Self::validate).
    pub fn new(interval: Duration, keep_daily: u32, keep_weekly: u32) -> Result<Self, Error> {
        let schedule = Self {
            interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
            keep_daily,
            keep_weekly,
        };
        schedule.validate()?;
        Ok(schedule)
    }

    /// Checks the ranges.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `backup.interval_ms`, `backup.keep_daily` or
    /// `backup.keep_weekly`.
    pub fn validate(&self) -> Result<(), Error> {
        if !(MIN_BACKUP_INTERVAL_MS..=MAX_BACKUP_INTERVAL_MS).contains(&self.interval_ms) {
            return Err(Error::invalid(
                "backup.interval_ms",
                "must be 1000 ms to 366 days",
            ));
        }
        if self.keep_daily > MAX_RETENTION_SLOTS {
            return Err(Error::invalid("backup.keep_daily", "must be at most 520"));
        }
        if self.keep_weekly > MAX_RETENTION_SLOTS {
            return Err(Error::invalid("backup.keep_weekly", "must be at most 520"));
        }
        if self.keep_daily == 0 && self.keep_weekly == 0 {
            return Err(Error::invalid(
                "backup.keep_daily",
                "keep_daily and keep_weekly cannot both be 0",
            ));
        }
        Ok(())
    }

    /// The interval as a [`Duration`].
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_schedules_name_their_field() {
        let second = Duration::from_secs(1);
        for (interval, daily, weekly, field) in [
            (Duration::from_millis(999), 1, 1, "backup.interval_ms"),
            (
                Duration::from_secs(367 * 86_400),
                1,
                1,
                "backup.interval_ms",
            ),
            (second, 521, 1, "backup.keep_daily"),
            (second, 1, 521, "backup.keep_weekly"),
            (second, 0, 0, "backup.keep_daily"),
        ] {
            let err = BackupSchedule::new(interval, daily, weekly).err();
            assert_eq!(err.as_ref().and_then(Error::field), Some(field), "{err:?}");
        }
        assert!(BackupSchedule::new(second, 0, 1).is_ok());
    }
}
