//! A host's provisioning hooks: a veto before provisioning fails the tenant with the hook's
//! reason and leaves no storage; an error after it fails the run (retried by the worker when
//! retryable); the tenant is active only once every hook succeeded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::Harness;
use tenant_manager_core::manager::{ManagerConfig, Registration, TenantManager};
use tenant_manager_core::memory::{
    InMemoryProvisioner, InMemoryQuotaEnforcer, InMemoryRegistry, InMemoryTenantData,
};
use tenant_manager_core::worker::{JobOutcome, WorkerConfig};
use tenant_manager_core::{
    Error, ProvisioningHook, Result, Tenant, TenantRegistry, TenantStatus, async_trait,
};
use tokio_util::sync::CancellationToken;

/// A hook that records its calls (with the tenant's status as the registry holds it) and
/// fails as told.
#[derive(Debug)]
struct Hook {
    registry: Arc<dyn TenantRegistry>,
    calls: Mutex<Vec<(&'static str, TenantStatus)>>,
    veto: Option<&'static str>,
    /// `after_provisioning` answers `Unavailable` this many times, then succeeds.
    after_failures: AtomicU32,
    after_permanent: bool,
}

impl Hook {
    fn new(registry: Arc<dyn TenantRegistry>) -> Self {
        Self {
            registry,
            calls: Mutex::new(Vec::new()),
            veto: None,
            after_failures: AtomicU32::new(0),
            after_permanent: false,
        }
    }

    fn calls(&self) -> Vec<(&'static str, TenantStatus)> {
        self.calls.lock().unwrap().clone()
    }

    async fn record(&self, step: &'static str, tenant: &Tenant) {
        let status = self.registry.get_tenant(tenant.id).await.unwrap().status;
        self.calls.lock().unwrap().push((step, status));
    }
}

#[async_trait]
impl ProvisioningHook for Hook {
    async fn before_provisioning(&self, tenant: &Tenant) -> Result<()> {
        self.record("before", tenant).await;
        match self.veto {
            Some(reason) => Err(Error::forbidden(reason)),
            None => Ok(()),
        }
    }

    async fn after_provisioning(&self, tenant: &Tenant) -> Result<()> {
        self.record("after", tenant).await;
        if self.after_permanent {
            return Err(Error::invalid("billing_account", "could not be opened"));
        }
        let left = self.after_failures.load(Ordering::SeqCst);
        if left > 0 {
            self.after_failures.store(left - 1, Ordering::SeqCst);
            return Err(Error::unavailable(
                "billing",
                std::io::Error::other("billing is down"),
            ));
        }
        Ok(())
    }
}

/// A manager with inline provisioning and `hook`, over in-memory adapters.
fn manager(
    registry: Arc<InMemoryRegistry>,
    data: Arc<InMemoryTenantData>,
    hook: Arc<Hook>,
) -> TenantManager {
    TenantManager::builder()
        .with_registry(registry)
        .with_provisioner(Arc::new(InMemoryProvisioner::new(data)))
        .with_quota(Arc::new(InMemoryQuotaEnforcer::default()))
        .with_hasher(support::cheap_hasher())
        .with_tokens(support::tokens())
        .with_provisioning_hook(hook)
        .build()
        .unwrap()
}

async fn register(manager: &TenantManager) -> Tenant {
    manager
        .register_organization(Registration::new(
            "Acme",
            "owner@acme.test",
            support::PASSWORD,
        ))
        .await
        .unwrap()
        .tenant
}

#[tokio::test]
async fn hooks_run_around_provisioning_and_the_tenant_is_active_after_them() {
    let registry = Arc::new(InMemoryRegistry::new());
    let data = Arc::new(InMemoryTenantData::new());
    let hook = Arc::new(Hook::new(registry.clone()));
    let tenant = register(&manager(registry, data.clone(), hook.clone())).await;
    assert_eq!(tenant.status, TenantStatus::Active);
    assert_eq!(
        hook.calls(),
        [
            ("before", TenantStatus::Provisioning),
            ("after", TenantStatus::Provisioning),
        ]
    );
    assert!(data.contains(tenant.id), "storage provisioned");
}

#[tokio::test]
async fn a_veto_before_provisioning_fails_the_tenant_with_its_reason_and_no_storage() {
    let registry = Arc::new(InMemoryRegistry::new());
    let data = Arc::new(InMemoryTenantData::new());
    let mut hook = Hook::new(registry.clone());
    hook.veto = Some("sanctioned region");
    let hook = Arc::new(hook);
    let tenant = register(&manager(registry, data.clone(), hook.clone())).await;
    assert_eq!(tenant.status, TenantStatus::Failed);
    assert!(
        tenant.status_reason.unwrap().contains("sanctioned region"),
        "the hook's reason is recorded"
    );
    assert_eq!(hook.calls(), [("before", TenantStatus::Provisioning)]);
    assert!(!data.contains(tenant.id), "no storage after a veto");
}

#[tokio::test]
async fn a_permanent_error_after_provisioning_fails_the_tenant() {
    let registry = Arc::new(InMemoryRegistry::new());
    let data = Arc::new(InMemoryTenantData::new());
    let mut hook = Hook::new(registry.clone());
    hook.after_permanent = true;
    let tenant = register(&manager(registry, data, Arc::new(hook))).await;
    assert_eq!(tenant.status, TenantStatus::Failed);
    assert!(
        tenant
            .status_reason
            .unwrap()
            .contains("could not be opened")
    );
}

#[tokio::test]
async fn a_retryable_error_after_provisioning_is_retried_by_the_worker() {
    let h = Harness::with(ManagerConfig::default().with_async_provisioning(true), None);
    let hook = Hook::new(h.registry.clone());
    hook.after_failures.store(1, Ordering::SeqCst);
    let hook = Arc::new(hook);
    let r = h.register("Acme", "owner@acme.test").await;
    let worker = h
        .manager
        .worker(
            WorkerConfig::default()
                .with_poll_wait(Duration::from_millis(500))
                .with_retry(Duration::from_millis(5), Duration::from_millis(20)),
        )
        .unwrap()
        .with_provisioning_hook(hook.clone());
    let token = CancellationToken::new();
    let first = worker.run_once(&token).await.unwrap().unwrap();
    assert!(
        matches!(first.outcome, JobOutcome::Retrying { .. }),
        "{first:?}"
    );
    assert_eq!(
        h.manager.get(r.tenant.id).await.unwrap().status,
        TenantStatus::Provisioning,
        "not active while a hook has not succeeded"
    );
    let mut second = None;
    for _ in 0..50 {
        if let Some(report) = worker.run_once(&token).await.unwrap() {
            second = Some(report);
            break;
        }
    }
    assert_eq!(second.unwrap().outcome, JobOutcome::Completed);
    assert_eq!(
        h.manager.get(r.tenant.id).await.unwrap().status,
        TenantStatus::Active
    );
    let steps: Vec<_> = hook.calls().into_iter().map(|(s, _)| s).collect();
    assert_eq!(
        steps,
        ["before", "after", "before", "after"],
        "each retry runs every hook"
    );
}
