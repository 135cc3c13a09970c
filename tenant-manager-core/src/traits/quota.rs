//! `QuotaEnforcer`: request rate limits and usage quotas.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use crate::domain::{RateLimit, TenantId};
use crate::error::{Error, Result};

/// Whom a rate limit counts: a tenant, a client address, or a host-defined key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RateKey(String);

impl RateKey {
    /// The request rate of a tenant.
    pub fn tenant(id: TenantId) -> Self {
        Self(format!("tenant:{id}"))
    }

    /// The request rate of a client address on unauthenticated routes.
    pub fn client(addr: std::net::IpAddr) -> Self {
        Self(format!("ip:{addr}"))
    }

    /// A host-defined key: 1 to 128 printable ASCII characters without spaces.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on field `rate_key`.
    pub fn custom(key: &str) -> Result<Self> {
        if key.is_empty() || key.len() > 128 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::invalid(
                "rate_key",
                "must be 1 to 128 printable ASCII characters",
            ));
        }
        Ok(Self(format!("key:{key}")))
    }

    /// The key as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RateKey({})", self.0)
    }
}

/// The answer to a rate check, enough for `RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RateDecision {
    /// Whether the request is admitted.
    pub allowed: bool,
    /// The limit that applies.
    pub limit: u64,
    /// Requests left in the current window after this one.
    pub remaining: u64,
    /// Time until the limit is fully replenished.
    pub reset_after: Duration,
    /// When refused: time until one request would be admitted.
    pub retry_after: Option<Duration>,
}

impl RateDecision {
    /// A decision.
    pub fn new(
        allowed: bool,
        limit: u64,
        remaining: u64,
        reset_after: Duration,
        retry_after: Option<Duration>,
    ) -> Self {
        Self {
            allowed,
            limit,
            remaining,
            reset_after,
            retry_after,
        }
    }

    /// `Ok(self)` when allowed.
    ///
    /// # Errors
    /// [`Error::QuotaExceeded`] for quota `requests` when refused, retrying after the
    /// decision's `retry_after` (or its `reset_after`).
    pub fn into_result(self) -> Result<Self> {
        if self.allowed {
            Ok(self)
        } else {
            Err(Error::QuotaExceeded {
                quota: "requests".into(),
                limit: self.limit,
                retry_after: self.retry_after.unwrap_or(self.reset_after),
            })
        }
    }
}

/// A usage quota that is consumed and released, not replenished over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum UsageKind {
    /// Users of the tenant.
    Users,
    /// Bytes of storage.
    StorageBytes,
}

impl UsageKind {
    /// Stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            UsageKind::Users => "users",
            UsageKind::StorageBytes => "storage_bytes",
        }
    }
}

/// The answer to a usage check-and-consume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct UsageDecision {
    /// Whether the amount was consumed.
    pub allowed: bool,
    /// Usage after the call (unchanged when refused).
    pub used: u64,
    /// The maximum.
    pub max: u64,
}

impl UsageDecision {
    /// A decision.
    pub fn new(allowed: bool, used: u64, max: u64) -> Self {
        Self { allowed, used, max }
    }
}

/// Checks and consumes rate limits and usage quotas.
///
/// # Contract
/// - `check_rate` is atomic: under any concurrency, exactly `limit` requests of cost 1 are
///   admitted in a fresh window (a precise algorithm such as GCRA, not fixed windows).
/// - `consume_usage` is an atomic check-and-consume: usage never exceeds `max`; a negative
///   `amount` releases usage (never below zero) and is always allowed.
/// - `set_usage` overwrites: the next `usage` returns the value set (until another call).
/// - One network round trip per call at most.
///
/// # Errors
/// - `InvalidInput` for a zero limit or window, or a `cost` of 0 or above the limit (such a
///   request could never be admitted).
/// - `Unavailable` when the backend cannot be reached; callers choose to fail open or closed.
#[async_trait]
pub trait QuotaEnforcer: fmt::Debug + Send + Sync + 'static {
    /// Checks `cost` requests against `limit` for `key` and consumes them if admitted.
    async fn check_rate(&self, key: &RateKey, limit: &RateLimit, cost: u32)
    -> Result<RateDecision>;

    /// Atomically adds `amount` to a tenant's usage of `kind` if the result stays within `max`.
    async fn consume_usage(
        &self,
        tenant: TenantId,
        kind: UsageKind,
        amount: i64,
        max: u64,
    ) -> Result<UsageDecision>;

    /// Replaces a tenant's usage of `kind` with a measured `value` (storage measured by a
    /// [`StorageMeter`](crate::traits::StorageMeter)), whatever it was.
    async fn set_usage(&self, tenant: TenantId, kind: UsageKind, value: u64) -> Result<()>;

    /// A tenant's current usage of `kind`.
    async fn usage(&self, tenant: TenantId, kind: UsageKind) -> Result<u64>;

    /// Forgets all rate and usage state of a tenant (on purge).
    async fn reset_tenant(&self, tenant: TenantId) -> Result<()>;
}
