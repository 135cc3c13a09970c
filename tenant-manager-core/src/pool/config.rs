//! `PoolConfig`: the caps and timeouts of the pool engine.

use std::time::Duration;

use crate::domain::Tenant;
use crate::error::{Error, Result};

/// Caps and timeouts of [`TenantPools`](super::TenantPools).
///
/// Connections are opened on demand only (no minimum of idle connections), so a tenant that
/// sends no requests holds no connection.
///
/// ```
/// use std::time::Duration;
/// use tenant_manager_core::pool::PoolConfig;
///
/// let config = PoolConfig::default()
///     .with_max_total(10_000)
///     .with_max_per_tenant(20)
///     .with_idle_timeout(Duration::from_millis(1_800_000));
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolConfig {
    /// Most open connections, all pools together (`MAX_TOTAL_CONNECTIONS`).
    pub max_total: u32,
    /// Most open connections of one tenant (`MAX_CONNECTIONS_PER_TENANT`). A tenant's quota
    /// override (`Tenant::quota`) may lower it, never raise it.
    pub max_per_tenant: u32,
    /// How long `acquire` may wait for a connection before `PoolExhausted`.
    pub acquire_timeout: Duration,
    /// A pool unused for this long is closed by the reaper (`POOL_IDLE_TIMEOUT`); in a pool
    /// shared by tenants, connections idle for this long are closed.
    pub idle_timeout: Duration,
    /// How often the reaper looks for idle pools.
    pub reaper_interval: Duration,
    /// Whether a connection of a tenant's own pool is pinged before it is handed out.
    /// Connections of shared pools are checked whenever their scope is set.
    pub test_on_checkout: bool,
    /// Tenant affinity of shared pools: a connection its tenant returned clean (the
    /// connector's [`keep_scope`](super::TenantConnector::keep_scope)) keeps that tenant's
    /// scope and goes back to the same tenant, with no statement at all, if that tenant asks
    /// within this long; later, or for another tenant, it is reset and scoped in one step.
    /// Zero turns affinity off: every returned connection is reset at once.
    pub scope_affinity: Duration,
}

impl Default for PoolConfig {
    /// 100 connections in total, 20 per tenant (the seed's default), 30 s acquire timeout,
    /// 30 min idle timeout, reaper every 30 s, ping on checkout, 5 s of tenant affinity.
    fn default() -> Self {
        Self {
            max_total: 100,
            max_per_tenant: 20,
            acquire_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30 * 60),
            reaper_interval: Duration::from_secs(30),
            test_on_checkout: true,
            scope_affinity: Duration::from_secs(5),
        }
    }
}

impl PoolConfig {
    /// Sets the global cap.
    #[must_use]
    pub fn with_max_total(mut self, max_total: u32) -> Self {
        self.max_total = max_total;
        self
    }

    /// Sets the per-tenant cap.
    #[must_use]
    pub fn with_max_per_tenant(mut self, max_per_tenant: u32) -> Self {
        self.max_per_tenant = max_per_tenant;
        self
    }

    /// Sets the acquire timeout.
    #[must_use]
    pub fn with_acquire_timeout(mut self, acquire_timeout: Duration) -> Self {
        self.acquire_timeout = acquire_timeout;
        self
    }

    /// Sets the idle timeout.
    #[must_use]
    pub fn with_idle_timeout(mut self, idle_timeout: Duration) -> Self {
        self.idle_timeout = idle_timeout;
        self
    }

    /// Sets how often the reaper runs.
    #[must_use]
    pub fn with_reaper_interval(mut self, reaper_interval: Duration) -> Self {
        self.reaper_interval = reaper_interval;
        self
    }

    /// Sets whether connections of tenant pools are pinged on checkout.
    #[must_use]
    pub fn with_test_on_checkout(mut self, test_on_checkout: bool) -> Self {
        self.test_on_checkout = test_on_checkout;
        self
    }

    /// Sets how long a returned connection keeps its tenant's scope for that tenant (zero:
    /// no affinity).
    #[must_use]
    pub fn with_scope_affinity(mut self, scope_affinity: Duration) -> Self {
        self.scope_affinity = scope_affinity;
        self
    }

    /// Checks that every cap is at least 1 and every duration is positive (the affinity may
    /// be zero).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the first field out of range.
    pub fn validate(&self) -> Result<()> {
        if self.max_total == 0 || self.max_total > MAX_CONNECTIONS {
            return Err(Error::invalid("max_total", "must be 1 to 1000000"));
        }
        if self.max_per_tenant == 0 || self.max_per_tenant > MAX_CONNECTIONS {
            return Err(Error::invalid("max_per_tenant", "must be 1 to 1000000"));
        }
        for (field, value) in [
            ("acquire_timeout", self.acquire_timeout),
            ("idle_timeout", self.idle_timeout),
            ("reaper_interval", self.reaper_interval),
        ] {
            if value.is_zero() || value > MAX_DURATION {
                return Err(Error::invalid(field, "must be between 1 ns and 7 days"));
            }
        }
        if self.scope_affinity > MAX_DURATION {
            return Err(Error::invalid("scope_affinity", "must be at most 7 days"));
        }
        Ok(())
    }

    /// The cap of one tenant: [`max_per_tenant`](Self::max_per_tenant), lowered by the tenant's
    /// quota override, never above the global cap.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `quota.max_connections` when the override is 0.
    pub fn cap_for(&self, tenant: &Tenant) -> Result<u32> {
        let cap = match &tenant.quota {
            Some(quota) if quota.max_connections == 0 => {
                return Err(Error::invalid(
                    "quota.max_connections",
                    "must be at least 1",
                ));
            }
            Some(quota) => quota.max_connections.min(self.max_per_tenant),
            None => self.max_per_tenant,
        };
        Ok(cap.min(self.max_total))
    }
}

/// Upper bound of the caps: well above any Postgres `max_connections`, far below the
/// semaphore's limit.
const MAX_CONNECTIONS: u32 = 1_000_000;

/// Upper bound of the durations, so deadlines never overflow an `Instant`.
const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_caps_and_durations_are_refused() {
        assert!(PoolConfig::default().validate().is_ok());
        let bad = [
            PoolConfig::default().with_max_total(0),
            PoolConfig::default().with_max_per_tenant(0),
            PoolConfig::default().with_acquire_timeout(Duration::ZERO),
            PoolConfig::default().with_idle_timeout(Duration::ZERO),
            PoolConfig::default().with_reaper_interval(Duration::from_secs(8 * 24 * 3600)),
        ];
        for config in bad {
            assert_eq!(
                config.validate().err().map(|e| e.code()),
                Some("invalid_input")
            );
        }
    }
}
