//! Life-cycle steps shared by the manager and the provisioning worker: status transitions
//! that also drop cached copies, provisioning, deprovisioning, marking failures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::domain::{Actor, EventKind, Tenant, TenantId, TenantStatus};
use crate::error::{Error, Result};
use crate::lifecycle::events::{kind_of, publish, reason_details};
use crate::traits::PoolCloser;
use crate::traits::{EventBus, Provisioner, ProvisioningHook, TenantCache, TenantRegistry};

/// Counter of provisioning outcomes, labelled `result`.
pub(crate) const PROVISIONING_TOTAL: &str = "tenant_provisioning_total";
/// Counter of deprovisioning outcomes, labelled `result`.
pub(crate) const DEPROVISIONING_TOTAL: &str = "tenant_deprovisioning_total";
/// Histogram of provisioning durations.
const PROVISIONING_SECONDS: &str = "tenant_provisioning_duration_seconds";

/// Counter of cache invalidations that failed and were handed to a background retry,
/// labelled `result` (`delivered` or `abandoned`).
pub(crate) const INVALIDATION_RETRIES_TOTAL: &str = "tenant_cache_invalidation_retries_total";
/// How long a failed invalidation is retried: past it every copy has expired from a cache
/// that keeps records at most this long (the Redis cache's default TTL is 5 min).
const REDELIVERY_DEADLINE: Duration = Duration::from_secs(600);
/// Longest pause between two redelivery attempts.
const REDELIVERY_MAX_PAUSE: Duration = Duration::from_millis(500);

/// Longest failure reason recorded on a tenant.
const MAX_REASON_CHARS: usize = 500;

/// The adapters a life-cycle step touches.
#[derive(Debug, Clone)]
pub(crate) struct TenantOps {
    pub(crate) registry: Arc<dyn TenantRegistry>,
    pub(crate) provisioner: Arc<dyn Provisioner>,
    pub(crate) cache: Option<Arc<dyn TenantCache>>,
    pub(crate) pools: Option<Arc<dyn PoolCloser>>,
    pub(crate) events: Option<Arc<dyn EventBus>>,
    /// The host's steps around provisioning, in order.
    pub(crate) hooks: Vec<Arc<dyn ProvisioningHook>>,
    /// The mover of tenants between database servers, if configured.
    pub(crate) moves: Option<crate::lifecycle::move_config::Moves>,
}

impl TenantOps {
    /// Moves a tenant to `to`, drops cached copies and publishes the change's event (see
    /// [`kind_of`]). A tenant already in `to` (a racing caller, or a retry) is returned as it
    /// is, and no event is published for it again.
    pub(crate) async fn transition(
        &self,
        id: TenantId,
        to: TenantStatus,
        reason: Option<String>,
    ) -> Result<Tenant> {
        self.transition_as(id, to, reason, kind_of(to), Actor::System)
            .await
    }

    /// [`TenantOps::transition`], publishing an event of `kind` (none with `None`) by `actor`.
    pub(crate) async fn transition_as(
        &self,
        id: TenantId,
        to: TenantStatus,
        reason: Option<String>,
        kind: Option<EventKind>,
        actor: Actor,
    ) -> Result<Tenant> {
        let details = reason_details(reason.as_deref());
        let (tenant, changed) = match self.registry.transition(id, to, reason).await {
            Ok(tenant) => (tenant, true),
            Err(Error::InvalidTransition { from, .. }) if from == to => {
                (self.registry.get_tenant(id).await?, false)
            }
            Err(e) => return Err(e),
        };
        let invalidated = self.invalidate(id).await;
        // The change is in the registry: its event goes out even if the invalidation failed
        // (a repeated call finds the tenant in `to` and publishes nothing).
        if let (true, Some(kind)) = (changed, kind) {
            self.emit(kind, &tenant, actor, details).await;
        }
        invalidated?;
        Ok(tenant)
    }

    /// Drops cached copies of a tenant, if a cache is configured.
    ///
    /// Called after a change the registry already holds, so an unreachable cache does not
    /// fail the change: the invalidation is delivered by a background task that retries until
    /// the cache answers (see [`redeliver`]). While the cache is unreachable no instance
    /// trusts a cached copy (lookups bypass it to the registry), so what this bounds is the
    /// moment the cache comes back holding the old record. Other errors are returned.
    pub(crate) async fn invalidate(&self, id: TenantId) -> Result<()> {
        let Some(cache) = &self.cache else {
            return Ok(());
        };
        match cache.invalidate(id).await {
            Ok(()) => Ok(()),
            Err(e) if e.is_retryable() => {
                tracing::warn!(tenant = %id, error = %e, "cache invalidation failed; retrying in the background");
                tokio::spawn(redeliver(Arc::clone(cache), id));
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Publishes an event of `kind` about `tenant`, if a bus is configured. Never fails: a
    /// refused event is logged and counted (see [`crate::lifecycle::events`]).
    pub(crate) async fn emit(
        &self,
        kind: EventKind,
        tenant: &Tenant,
        actor: Actor,
        details: Option<serde_json::Value>,
    ) {
        publish(self.events.as_ref(), kind, tenant, actor, details).await;
    }

    /// Closes the tenant's pool, if a pool closer is configured.
    pub(crate) async fn close_pool(&self, id: TenantId) -> Result<()> {
        match &self.pools {
            Some(pools) => pools.close_pool(id).await,
            None => Ok(()),
        }
    }

    /// `Pending` or `Failed` -> `Provisioning`; a tenant already `Provisioning` stays.
    pub(crate) async fn begin_provisioning(&self, tenant: Tenant) -> Result<Tenant> {
        if tenant.status == TenantStatus::Provisioning {
            return Ok(tenant);
        }
        self.transition(tenant.id, TenantStatus::Provisioning, None)
            .await
    }

    /// Runs the provisioner and marks the tenant `Active`. On error the tenant stays
    /// `Provisioning`; the caller retries or marks it failed.
    ///
    /// The hooks run around the provisioner (see [`ProvisioningHook`] for their failure
    /// semantics): their errors are this run's errors.
    pub(crate) async fn provision(&self, tenant: &Tenant) -> Result<Tenant> {
        let started = Instant::now();
        for hook in &self.hooks {
            hook.before_provisioning(tenant).await?;
        }
        let report = self.provisioner.provision(tenant).await?;
        for hook in &self.hooks {
            hook.after_provisioning(tenant).await?;
        }
        metrics::histogram!(PROVISIONING_SECONDS).record(started.elapsed().as_secs_f64());
        tracing::info!(
            tenant = %tenant.id,
            slug = %tenant.slug,
            steps = report.steps_run.len(),
            used_template = report.used_template,
            "tenant provisioned"
        );
        self.transition(tenant.id, TenantStatus::Active, None).await
    }

    /// Marks a tenant `Failed`, recording why.
    pub(crate) async fn mark_failed(&self, id: TenantId, error: &Error) -> Result<Tenant> {
        tracing::warn!(tenant = %id, error = %error, "tenant provisioning failed");
        self.transition(id, TenantStatus::Failed, Some(failure_reason(error)))
            .await
    }

    /// For a `Deleting` tenant: closes its pool, drops its storage, marks it `Deleted`.
    pub(crate) async fn finish_deletion(&self, tenant: &Tenant, actor: Actor) -> Result<Tenant> {
        self.close_pool(tenant.id).await?;
        self.provisioner.deprovision(tenant).await?;
        let deleted = self
            .transition_as(
                tenant.id,
                TenantStatus::Deleted,
                None,
                kind_of(TenantStatus::Deleted),
                actor,
            )
            .await?;
        tracing::info!(tenant = %tenant.id, slug = %tenant.slug, "tenant deprovisioned");
        Ok(deleted)
    }
}

/// The reason recorded on a failed tenant: the error's message (never a secret, by the
/// error type's contract), cut to a bounded length.
pub(crate) fn failure_reason(error: &Error) -> String {
    let message = error.to_string();
    match message.char_indices().nth(MAX_REASON_CHARS) {
        Some((cut, _)) => message[..cut].to_owned(),
        None => message,
    }
}

/// Counts one outcome of a life-cycle job.
pub(crate) fn record(metric: &'static str, result: &'static str) {
    metrics::counter!(metric, "result" => result).increment(1);
}

/// Retries a failed invalidation until the cache takes it or [`REDELIVERY_DEADLINE`]
/// passes, pausing 50 ms, doubling up to [`REDELIVERY_MAX_PAUSE`].
pub(crate) async fn redeliver(cache: Arc<dyn TenantCache>, id: TenantId) {
    let deadline = Instant::now() + REDELIVERY_DEADLINE;
    let mut pause = Duration::from_millis(50);
    while Instant::now() < deadline {
        tokio::time::sleep(pause).await;
        match cache.invalidate(id).await {
            Ok(()) => {
                tracing::info!(tenant = %id, "cache invalidation delivered after a retry");
                metrics::counter!(INVALIDATION_RETRIES_TOTAL, "result" => "delivered").increment(1);
                return;
            }
            Err(e) if e.is_retryable() => pause = (pause * 2).min(REDELIVERY_MAX_PAUSE),
            Err(e) => {
                tracing::error!(tenant = %id, error = %e, "cache invalidation refused; giving up");
                break;
            }
        }
    }
    metrics::counter!(INVALIDATION_RETRIES_TOTAL, "result" => "abandoned").increment(1);
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;

    use super::*;
    use crate::domain::{Isolation, NewTenant, TenantSlug};
    use crate::memory::{
        InMemoryProvisioner, InMemoryRegistry, InMemoryTenantCache, InMemoryTenantData,
    };
    use crate::traits::{CacheEpoch, CacheKey, CacheLookup, CacheStats};

    /// A cache whose first `failures` invalidations answer `error`.
    #[derive(Debug)]
    struct FlakyCache {
        inner: InMemoryTenantCache,
        failures: usize,
        calls: AtomicUsize,
        retryable: bool,
    }

    #[async_trait]
    impl TenantCache for FlakyCache {
        async fn lookup(&self, key: &CacheKey) -> Result<CacheLookup> {
            self.inner.lookup(key).await
        }
        async fn put(&self, tenant: &Tenant) -> Result<()> {
            self.inner.put(tenant).await
        }
        async fn put_if_current(&self, tenant: &Tenant, epoch: CacheEpoch) -> Result<bool> {
            self.inner.put_if_current(tenant, epoch).await
        }
        async fn invalidate(&self, id: TenantId) -> Result<()> {
            if self.calls.fetch_add(1, Ordering::SeqCst) < self.failures {
                return Err(if self.retryable {
                    Error::unavailable("cache", "connection refused")
                } else {
                    Error::internal("refused")
                });
            }
            self.inner.invalidate(id).await
        }
        fn stats(&self) -> CacheStats {
            self.inner.stats()
        }
    }

    async fn ops_with(cache: Arc<FlakyCache>) -> Result<(TenantOps, Tenant)> {
        let registry = Arc::new(InMemoryRegistry::new());
        let slug = TenantSlug::new("acme")?;
        let tenant = registry
            .create_tenant(NewTenant::new(slug, "Acme", Isolation::Schema)?)
            .await?;
        cache.put(&tenant).await?;
        let ops = TenantOps {
            registry,
            provisioner: Arc::new(InMemoryProvisioner::new(
                Arc::new(InMemoryTenantData::new()),
            )),
            cache: Some(cache),
            pools: None,
            events: None,
            hooks: Vec::new(),
            moves: None,
        };
        Ok((ops, tenant))
    }

    fn flaky(failures: usize, retryable: bool) -> Arc<FlakyCache> {
        Arc::new(FlakyCache {
            inner: InMemoryTenantCache::default(),
            failures,
            calls: AtomicUsize::new(0),
            retryable,
        })
    }

    #[tokio::test]
    async fn an_unreachable_cache_gets_the_invalidation_once_it_answers() -> Result<()> {
        let cache = flaky(3, true);
        let (ops, tenant) = ops_with(Arc::clone(&cache)).await?;
        ops.invalidate(tenant.id).await?;
        let key = CacheKey::Id(tenant.id);
        let deadline = Instant::now() + Duration::from_secs(10);
        while cache.get(&key).await?.is_some() {
            assert!(
                Instant::now() < deadline,
                "the cached copy outlived the retries"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(cache.calls.load(Ordering::SeqCst), 4);
        Ok(())
    }

    #[tokio::test]
    async fn a_refused_invalidation_is_returned() -> Result<()> {
        let cache = flaky(1, false);
        let (ops, tenant) = ops_with(Arc::clone(&cache)).await?;
        let refused = ops.invalidate(tenant.id).await;
        assert_eq!(refused.err().map(|e| e.code()), Some("internal"));
        let key = CacheKey::Id(tenant.id);
        assert!(cache.get(&key).await?.is_some());
        Ok(())
    }

    #[test]
    fn failure_reasons_are_bounded() {
        let long = Error::internal("x".repeat(2_000));
        assert_eq!(failure_reason(&long).chars().count(), MAX_REASON_CHARS);
        let short = Error::internal("disk full");
        assert_eq!(failure_reason(&short), "internal error: disk full");
    }
}
