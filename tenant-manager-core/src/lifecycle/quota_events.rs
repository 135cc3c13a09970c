//! [`QuotaExceededEvents`]: publishes a [`EventKind::QuotaExceeded`] event when a quota refuses
//! a tenant's request, at most once per tenant, quota and window, however many requests a
//! flood brings.
//!
//! Two filters, in order: a local one (a cache of the `(tenant, quota)` pairs this process
//! published within the window, so a flood costs no round trip), then a shared one (a rate of
//! one per window in the [`QuotaEnforcer`], under the key `quota-event:<quota>:<tenant>`), so
//! instances that share the enforcer (Redis) publish one event between them. When the enforcer
//! cannot be reached the local filter alone applies (at most one event per instance).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;

use crate::domain::{Actor, EventKind, RateLimit, Tenant, TenantId};
use crate::error::{Error, Result};
use crate::lifecycle::events::publish;
use crate::traits::{EventBus, QuotaEnforcer, RateKey};

/// Pairs of tenant and quota remembered by the local filter at most.
const LOCAL_CAPACITY: u64 = 100_000;
/// Longest window accepted: one day.
pub const MAX_QUOTA_EVENT_WINDOW: Duration = Duration::from_secs(86_400);

/// Publishes throttled [`EventKind::QuotaExceeded`] events. Cheap to clone.
#[derive(Clone)]
pub struct QuotaExceededEvents {
    bus: Arc<dyn EventBus>,
    quota: Arc<dyn QuotaEnforcer>,
    window: Duration,
    recent: Cache<(TenantId, String), ()>,
}

impl fmt::Debug for QuotaExceededEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuotaExceededEvents")
            .field("bus", &self.bus)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl QuotaExceededEvents {
    /// Events on `bus`, at most one per tenant, quota and `window` (1 ms to one day), the
    /// shared filter counted by `quota`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on field `window`.
    pub fn new(
        bus: Arc<dyn EventBus>,
        quota: Arc<dyn QuotaEnforcer>,
        window: Duration,
    ) -> Result<Self> {
        if window.is_zero() || window > MAX_QUOTA_EVENT_WINDOW {
            return Err(Error::invalid("window", "must be 1 ms to one day"));
        }
        let recent = Cache::builder()
            .max_capacity(LOCAL_CAPACITY)
            .time_to_live(window)
            .build();
        Ok(Self {
            bus,
            quota,
            window,
            recent,
        })
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Publishes that `tenant` ran into `quota` (such as `requests` or `storage_bytes`, of
    /// limit `limit`) because of `actor`, unless an event for this tenant and quota went out
    /// within the window. Returns whether this call published. Never fails: a refused
    /// publish is logged and counted like every life-cycle event's.
    pub async fn exceeded(&self, tenant: &Tenant, quota: &str, limit: u64, actor: Actor) -> bool {
        let fresh = self
            .recent
            .entry((tenant.id, quota.to_owned()))
            .or_insert(())
            .await
            .is_fresh();
        if !fresh || !self.first_in_window(tenant.id, quota).await {
            return false;
        }
        let details = serde_json::json!({
            "quota": quota,
            "limit": limit,
            "window_ms": u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX),
        });
        publish(
            Some(&self.bus),
            EventKind::QuotaExceeded,
            tenant,
            actor,
            Some(details),
        )
        .await;
        true
    }

    /// The shared filter: whether no other instance published this pair within the window.
    async fn first_in_window(&self, tenant: TenantId, quota: &str) -> bool {
        let key = match RateKey::custom(&format!("quota-event:{quota}:{tenant}")) {
            Ok(key) => key,
            Err(_) => return true,
        };
        let limit = RateLimit {
            limit: 1,
            window_ms: u64::try_from(self.window.as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
        };
        match self.quota.check_rate(&key, &limit, 1).await {
            Ok(decision) => decision.allowed,
            Err(error) => {
                tracing::warn!(%tenant, quota, %error, "quota event filter unavailable; publishing on the local filter alone");
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Isolation, NewTenant, TenantSlug};
    use crate::memory::{InMemoryEventBus, InMemoryQuotaConfig, InMemoryQuotaEnforcer};
    use futures::StreamExt as _;

    fn tenant() -> Tenant {
        let slug = TenantSlug::new("acme").unwrap_or_else(|e| panic!("{e}"));
        NewTenant::new(slug, "Acme", Isolation::Shared)
            .unwrap_or_else(|e| panic!("{e}"))
            .into_tenant(time::OffsetDateTime::now_utc())
    }

    #[tokio::test]
    async fn a_flood_publishes_once_per_tenant_and_quota_and_instances_share_the_filter() {
        let bus = Arc::new(InMemoryEventBus::default());
        let mut stream = bus.subscribe().await.unwrap_or_else(|e| panic!("{e}"));
        let enforcer: Arc<dyn QuotaEnforcer> = Arc::new(
            InMemoryQuotaEnforcer::new(InMemoryQuotaConfig::default())
                .unwrap_or_else(|e| panic!("{e}")),
        );
        let window = Duration::from_secs(3600);
        // Two instances sharing the enforcer (as two servers share Redis).
        let one = QuotaExceededEvents::new(bus.clone(), enforcer.clone(), window)
            .unwrap_or_else(|e| panic!("{e}"));
        let two = QuotaExceededEvents::new(bus.clone(), enforcer, window)
            .unwrap_or_else(|e| panic!("{e}"));
        let (a, b) = (tenant(), tenant());
        let mut published = 0;
        for _ in 0..50 {
            for events in [&one, &two] {
                published += usize::from(events.exceeded(&a, "requests", 10, Actor::System).await);
            }
        }
        published += usize::from(two.exceeded(&a, "storage_bytes", 5, Actor::System).await);
        published += usize::from(one.exceeded(&b, "requests", 10, Actor::System).await);
        assert_eq!(published, 3);
        drop((one, two));
        let mut seen = Vec::new();
        while let Ok(Some(event)) =
            tokio::time::timeout(Duration::from_millis(100), stream.next()).await
        {
            seen.push(event);
        }
        assert_eq!(seen.len(), 3);
        assert!(seen.iter().all(|e| e.kind == EventKind::QuotaExceeded));
        assert_eq!(seen[0].details["quota"], "requests");
        assert_eq!(seen[0].tenant_id, a.id);
        assert!(
            QuotaExceededEvents::new(
                bus,
                Arc::new(
                    InMemoryQuotaEnforcer::new(InMemoryQuotaConfig::default())
                        .unwrap_or_else(|e| panic!("{e}"))
                ),
                Duration::ZERO
            )
            .is_err()
        );
    }
}
