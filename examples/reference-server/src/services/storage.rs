//! Storage measurement: on demand (`POST /api/admin/tenants/{id}/usage/storage`) and every
//! `STORAGE_MEASURE_INTERVAL_MS` for every active tenant. A measurement is stored as the
//! tenant's `storage_bytes` usage in the quota enforcer (Redis: shared by every instance), where
//! the write guard reads it. The scheduled pass also writes each tenant's plan limits on its
//! Postgres role, so plan edits and new tenants get them without a plan change.

use std::time::Duration;

use tenant_manager::{Result, Tenant, TenantQuery, TenantStatus, UsageKind};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Services;

/// Tenants read per registry page during a scheduled pass.
const PAGE: u32 = 100;

/// Measures `tenant`'s storage now and stores it as its `storage_bytes` usage.
///
/// # Errors
/// The meter's (`NotReady` for a tenant without storage) and the quota enforcer's.
pub(crate) async fn measure(services: &Services, tenant: &Tenant) -> Result<u64> {
    let bytes = services.meter.measure(tenant).await?;
    services
        .quota
        .set_usage(tenant.id, UsageKind::StorageBytes, bytes)
        .await?;
    Ok(bytes)
}

/// Writes the tenant's plan limits on its Postgres role, when there is one to write on.
///
/// # Errors
/// The role limits'.
pub(crate) async fn apply_role_limits(services: &Services, tenant: &Tenant) -> Result<()> {
    if let Some(limits) = &services.role_limits {
        let policy = services.manager.effective_quota(tenant);
        limits.apply(tenant, &policy.db).await?;
    }
    Ok(())
}

/// Runs a pass every `interval` until `shutdown`.
pub(super) fn start(
    services: Services,
    interval: Duration,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) {
    super::periodic::every(interval, tasks, shutdown, move || {
        let services = services.clone();
        async move { pass(&services).await }
    });
}

/// Measures every active tenant once; a tenant that fails is logged and skipped.
async fn pass(services: &Services) {
    let mut after = None;
    loop {
        let query = TenantQuery::default()
            .with_status(Some(TenantStatus::Active))
            .with_after(after)
            .with_limit(PAGE);
        let page = match services.manager.list(&query).await {
            Ok(page) => page,
            Err(error) => {
                tracing::warn!(%error, "storage measurement: cannot list tenants");
                return;
            }
        };
        for tenant in &page.items {
            if let Err(error) = measure(services, tenant).await {
                tracing::warn!(tenant = %tenant.id, %error, "storage measurement failed");
            }
            if let Err(error) = apply_role_limits(services, tenant).await {
                tracing::warn!(tenant = %tenant.id, %error, "plan limits on the role failed");
            }
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return,
        }
    }
}
