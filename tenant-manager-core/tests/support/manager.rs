//! A `TenantManager` over the in-memory adapters, and the fakes its failure paths use.

use std::sync::{Arc, Mutex};

use tenant_manager_core::manager::{
    ManagerConfig, PoolCloser, Registered, Registration, TenantManager,
};
use tenant_manager_core::memory::{
    InMemoryBackup, InMemoryEventBus, InMemoryJobQueue, InMemoryJobQueueConfig,
    InMemoryProvisioner, InMemoryQuotaEnforcer, InMemoryRegistry, InMemoryTenantCache,
    InMemoryTenantData,
};
pub use tenant_manager_core::testing::faults::{Failure, FlakyProvisioner};
use tenant_manager_core::{
    Error, JobQueue, NewJob, Provisioner, QueueStats, Result, TenantId, TenantStatus, async_trait,
};

use super::{PASSWORD, cheap_hasher, tokens};

/// A pool closer that records which tenants' pools were closed.
#[derive(Debug, Default)]
pub struct RecordingPools {
    pub closed: Mutex<Vec<TenantId>>,
}

impl RecordingPools {
    pub fn closed(&self) -> Vec<TenantId> {
        self.closed.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl PoolCloser for RecordingPools {
    async fn close_pool(&self, tenant: TenantId) -> Result<()> {
        if let Ok(mut closed) = self.closed.lock() {
            closed.push(tenant);
        }
        Ok(())
    }
}

/// Builds a provisioner over the harness' tenant data.
pub type MakeProvisioner = fn(Arc<InMemoryTenantData>) -> Arc<dyn Provisioner>;

/// A manager over the in-memory adapters, with handles on each for assertions.
pub struct Harness {
    pub manager: TenantManager,
    pub registry: Arc<InMemoryRegistry>,
    pub data: Arc<InMemoryTenantData>,
    pub provisioner: Arc<dyn Provisioner>,
    pub quota: Arc<InMemoryQuotaEnforcer>,
    pub cache: Arc<InMemoryTenantCache>,
    pub jobs: Arc<InMemoryJobQueue>,
    pub pools: Arc<RecordingPools>,
    pub backup: Arc<InMemoryBackup>,
    pub events: Arc<InMemoryEventBus>,
}

impl Harness {
    /// Inline provisioning on the in-memory provisioner.
    pub fn new() -> Self {
        Self::with(ManagerConfig::default(), None)
    }

    /// Queued provisioning.
    pub fn queued() -> Self {
        Self::with(ManagerConfig::default().with_async_provisioning(true), None)
    }

    /// Any config, and optionally a provisioner of its own (built over the harness' data).
    pub fn with(config: ManagerConfig, provisioner: Option<MakeProvisioner>) -> Self {
        let data = Arc::new(InMemoryTenantData::new());
        let provisioner: Arc<dyn Provisioner> = match provisioner {
            Some(make) => make(Arc::clone(&data)),
            None => Arc::new(InMemoryProvisioner::new(Arc::clone(&data))),
        };
        Self::assemble(config, data, provisioner)
    }

    pub fn assemble(
        config: ManagerConfig,
        data: Arc<InMemoryTenantData>,
        provisioner: Arc<dyn Provisioner>,
    ) -> Self {
        let registry = Arc::new(InMemoryRegistry::new());
        let quota = Arc::new(InMemoryQuotaEnforcer::default());
        let cache = Arc::new(InMemoryTenantCache::default());
        let jobs = Arc::new(
            InMemoryJobQueue::new(InMemoryJobQueueConfig::default().with_max_attempts(3))
                .unwrap_or_else(|e| panic!("queue: {e}")),
        );
        let pools = Arc::new(RecordingPools::default());
        let backup = Arc::new(InMemoryBackup::new(
            Arc::clone(&data),
            Arc::new(tenant_manager_core::backup_store::ObjectBackupStore::in_memory()),
        ));
        let events = Arc::new(InMemoryEventBus::default());
        let manager = TenantManager::builder()
            .with_events(events.clone())
            .with_registry(registry.clone())
            .with_provisioner(Arc::clone(&provisioner))
            .with_quota(quota.clone())
            .with_cache(cache.clone())
            .with_jobs(jobs.clone())
            .with_pool_closer(pools.clone())
            .with_backup(backup.clone())
            .with_hasher(cheap_hasher())
            .with_tokens(tokens())
            .with_config(config)
            .build()
            .unwrap_or_else(|e| panic!("manager: {e}"));
        Self {
            manager,
            registry,
            data,
            provisioner,
            quota,
            cache,
            jobs,
            pools,
            backup,
            events,
        }
    }

    /// Registers `name` with owner `email` and the standard password.
    pub async fn register(&self, name: &str, email: &str) -> Registered {
        self.manager
            .register_organization(Registration::new(name, email, PASSWORD))
            .await
            .unwrap_or_else(|e| panic!("register {name}: {e}"))
    }

    /// The error of a login with the standard password that must be refused.
    pub async fn login_refusal(&self, email: &str) -> Error {
        match self.manager.login(email, PASSWORD).await {
            Ok(login) => panic!("login of {email} succeeded: {login:?}"),
            Err(e) => e,
        }
    }

    /// Asserts that logging in as `email` is refused because the tenant is `status`.
    pub async fn assert_login_not_ready(&self, email: &str, status: TenantStatus) {
        let err = self.login_refusal(email).await;
        assert!(
            matches!(&err, Error::NotReady { status: s, .. } if *s == status),
            "{err:?}"
        );
    }

    /// Adds a job to the harness' queue.
    pub async fn enqueue(&self, job: NewJob) {
        self.jobs
            .enqueue(job)
            .await
            .unwrap_or_else(|e| panic!("enqueue: {e}"));
    }

    /// The depth of the harness' queue.
    pub async fn queue_stats(&self) -> QueueStats {
        self.jobs
            .stats()
            .await
            .unwrap_or_else(|e| panic!("queue stats: {e}"))
    }
}
