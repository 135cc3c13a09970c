//! Plans and the quotas they grant.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::backup_schedule::BackupSchedule;
use super::rules::validate_short_name;
use crate::error::Error;

/// A request rate: at most `limit` requests per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RateLimit {
    /// Requests allowed per window (also the burst).
    pub limit: u64,
    /// The window, in milliseconds.
    pub window_ms: u64,
}

impl RateLimit {
    /// A validated rate limit.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when `limit` or `window` is zero, or the window exceeds 30 days.
    pub fn new(limit: u64, window: Duration) -> Result<Self, Error> {
        let rate = Self {
            limit,
            window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
        };
        rate.validate()?;
        Ok(rate)
    }

    /// Checks the invariants of [`RateLimit::new`].
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `rate_limit.limit` or `rate_limit.window_ms`.
    pub fn validate(&self) -> Result<(), Error> {
        if self.limit == 0 {
            return Err(Error::invalid("rate_limit.limit", "must be at least 1"));
        }
        if self.window_ms == 0 || self.window_ms > 30 * 24 * 3600 * 1000 {
            return Err(Error::invalid(
                "rate_limit.window_ms",
                "must be between 1 ms and 30 days",
            ));
        }
        Ok(())
    }

    /// The window as a [`Duration`].
    pub fn window(&self) -> Duration {
        Duration::from_millis(self.window_ms)
    }
}

/// Per-tenant Postgres session limits a plan sets; `None` leaves the server's own setting.
///
/// Serde-compatible with policies stored before these limits existed: every field is optional
/// and an all-`None` value is left out of the stored JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DbLimits {
    /// `statement_timeout` of the tenant's sessions, in milliseconds (1 ms to 24 hours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement_timeout_ms: Option<u32>,
    /// `work_mem` of the tenant's sessions, in kB (64 kB to 4 GiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_mem_kb: Option<u32>,
    /// `CONNECTION LIMIT` of the tenant's login role (1 to 10000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_limit: Option<u32>,
}

impl DbLimits {
    /// Most `statement_timeout`: 24 hours.
    pub const MAX_STATEMENT_TIMEOUT_MS: u32 = 24 * 3600 * 1000;
    /// Least `work_mem` Postgres accepts, in kB.
    pub const MIN_WORK_MEM_KB: u32 = 64;
    /// Most `work_mem`: 4 GiB, in kB.
    pub const MAX_WORK_MEM_KB: u32 = 4 * 1024 * 1024;

    /// Whether no limit is set.
    pub fn is_unset(&self) -> bool {
        *self == Self::default()
    }

    /// Checks the ranges.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `db.statement_timeout_ms`, `db.work_mem_kb` or
    /// `db.connection_limit`.
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(ms) = self.statement_timeout_ms
            && (ms == 0 || ms > Self::MAX_STATEMENT_TIMEOUT_MS)
        {
            return Err(Error::invalid(
                "db.statement_timeout_ms",
                "must be 1 ms to 24 hours",
            ));
        }
        if let Some(kb) = self.work_mem_kb
            && !(Self::MIN_WORK_MEM_KB..=Self::MAX_WORK_MEM_KB).contains(&kb)
        {
            return Err(Error::invalid("db.work_mem_kb", "must be 64 kB to 4 GiB"));
        }
        if let Some(n) = self.connection_limit
            && (n == 0 || n > 10_000)
        {
            return Err(Error::invalid("db.connection_limit", "must be 1 to 10000"));
        }
        Ok(())
    }
}

/// What a tenant may use: request rate, users, storage, connections and Postgres limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaPolicy {
    /// Request rate per tenant.
    pub rate: RateLimit,
    /// Most users a tenant may have.
    pub max_users: u64,
    /// Most bytes of storage a tenant may use.
    pub max_storage_bytes: u64,
    /// Most pooled connections a tenant may hold at once.
    pub max_connections: u32,
    /// Postgres session limits of the tenant (absent in policies stored before they existed).
    #[serde(
        default,
        skip_serializing_if = "DbLimits::is_unset",
        deserialize_with = "null_as_unset"
    )]
    pub db: DbLimits,
    /// The plan's backup schedule (none: its tenants are backed up only on demand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSchedule>,
}

/// `"db": null` reads as no limits.
fn null_as_unset<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<DbLimits, D::Error> {
    Option::<DbLimits>::deserialize(deserializer).map(Option::unwrap_or_default)
}

impl QuotaPolicy {
    /// Checks that every limit is usable.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the first field out of range.
    pub fn validate(&self) -> Result<(), Error> {
        self.rate.validate()?;
        if self.max_users == 0 {
            return Err(Error::invalid("max_users", "must be at least 1"));
        }
        if self.max_connections == 0 || self.max_connections > 10_000 {
            return Err(Error::invalid("max_connections", "must be 1 to 10000"));
        }
        self.db.validate()?;
        self.backup
            .as_ref()
            .map_or(Ok(()), BackupSchedule::validate)
    }
}

impl Default for QuotaPolicy {
    /// The seed's defaults: 100 requests per 15 minutes, 20 connections.
    fn default() -> Self {
        Self {
            rate: RateLimit {
                limit: 100,
                window_ms: 900_000,
            },
            max_users: 100,
            max_storage_bytes: 10 * 1024 * 1024 * 1024,
            max_connections: 20,
            db: DbLimits::default(),
            backup: None,
        }
    }
}

/// The name of a plan, such as `free`, `pro` or `enterprise`.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Plan(String);

impl Plan {
    /// Validates a plan name: 1 to 32 lowercase letters, digits, `_` or `-`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on field `plan`.
    pub fn new(name: impl Into<String>) -> Result<Self, Error> {
        let name = name.into();
        validate_short_name(&name, "plan")?;
        Ok(Self(name))
    }

    /// The default plan, `free`.
    pub fn free() -> Self {
        Self("free".to_owned())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Plan {
    fn default() -> Self {
        Self::free()
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Plan({})", self.0)
    }
}

impl TryFrom<String> for Plan {
    type Error = Error;
    fn try_from(value: String) -> Result<Self, Error> {
        Self::new(value)
    }
}

impl From<Plan> for String {
    fn from(plan: Plan) -> String {
        plan.0
    }
}

/// Maps plans to their quota policies; unknown plans get the default policy.
#[derive(Debug, Clone, Default)]
pub struct PlanCatalog {
    default: QuotaPolicy,
    plans: HashMap<Plan, QuotaPolicy>,
}

impl PlanCatalog {
    /// A catalog where every plan gets `default`.
    pub fn new(default: QuotaPolicy) -> Self {
        Self {
            default,
            plans: HashMap::new(),
        }
    }

    /// Adds or replaces a plan's policy.
    #[must_use]
    pub fn with_plan(mut self, plan: Plan, policy: QuotaPolicy) -> Self {
        self.plans.insert(plan, policy);
        self
    }

    /// The policy of a plan.
    pub fn policy(&self, plan: &Plan) -> &QuotaPolicy {
        self.plans.get(plan).unwrap_or(&self.default)
    }

    /// The policy of the default plan.
    pub fn default_policy(&self) -> &QuotaPolicy {
        &self.default
    }

    /// Whether `plan` has a policy of its own (not the default's).
    pub fn contains(&self, plan: &Plan) -> bool {
        self.plans.contains_key(plan)
    }

    /// The plans with a policy of their own, ordered by name.
    pub fn plans(&self) -> Vec<(&Plan, &QuotaPolicy)> {
        let mut plans: Vec<_> = self.plans.iter().collect();
        plans.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        plans
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn policies_stored_before_db_limits_still_read_and_unset_limits_are_not_written() {
        let old = r#"{"rate":{"limit":5,"window_ms":1000},"max_users":3,
            "max_storage_bytes":10,"max_connections":2}"#;
        let policy: QuotaPolicy = serde_json::from_str(old).unwrap();
        assert!(policy.db.is_unset());
        assert!(!serde_json::to_string(&policy).unwrap().contains("db"));
        let null = r#"{"rate":{"limit":5,"window_ms":1000},"max_users":3,
            "max_storage_bytes":10,"max_connections":2,"db":null}"#;
        let policy: QuotaPolicy = serde_json::from_str(null).unwrap();
        assert!(policy.db.is_unset());
        let with = QuotaPolicy {
            db: DbLimits {
                statement_timeout_ms: Some(300),
                ..DbLimits::default()
            },
            ..QuotaPolicy::default()
        };
        let json = serde_json::to_string(&with).unwrap();
        assert!(
            json.contains(r#""db":{"statement_timeout_ms":300}"#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<QuotaPolicy>(&json).unwrap(), with);
    }

    #[test]
    fn db_limits_out_of_range_name_their_field() {
        let cases = [
            (
                DbLimits {
                    statement_timeout_ms: Some(0),
                    ..DbLimits::default()
                },
                "db.statement_timeout_ms",
            ),
            (
                DbLimits {
                    statement_timeout_ms: Some(DbLimits::MAX_STATEMENT_TIMEOUT_MS + 1),
                    ..DbLimits::default()
                },
                "db.statement_timeout_ms",
            ),
            (
                DbLimits {
                    work_mem_kb: Some(63),
                    ..DbLimits::default()
                },
                "db.work_mem_kb",
            ),
            (
                DbLimits {
                    connection_limit: Some(0),
                    ..DbLimits::default()
                },
                "db.connection_limit",
            ),
            (
                DbLimits {
                    connection_limit: Some(10_001),
                    ..DbLimits::default()
                },
                "db.connection_limit",
            ),
        ];
        for (db, field) in cases {
            let policy = QuotaPolicy {
                db,
                ..QuotaPolicy::default()
            };
            assert_eq!(
                policy.validate().unwrap_err().field(),
                Some(field),
                "{db:?}"
            );
        }
        let fine = DbLimits {
            statement_timeout_ms: Some(1),
            work_mem_kb: Some(64),
            connection_limit: Some(10_000),
        };
        assert!(
            QuotaPolicy {
                db: fine,
                ..QuotaPolicy::default()
            }
            .validate()
            .is_ok()
        );
    }
}
