//! Shared set-up of the manager and worker tests: the real in-memory adapters, a cheap
//! password hasher, and small fakes for failure paths only.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use tenant_manager_core::auth::{HasherConfig, JwtConfig, PasswordHasher, TokenService};
use tenant_manager_core::manager::{ManagerConfig, PoolCloser, Registration, TenantManager};
use tenant_manager_core::memory::{
    InMemoryBackup, InMemoryBackupStore, InMemoryJobQueue, InMemoryJobQueueConfig,
    InMemoryProvisioner, InMemoryQuotaEnforcer, InMemoryRegistry, InMemoryTenantCache,
    InMemoryTenantData,
};
use tenant_manager_core::{
    Error, ProvisionReport, Provisioner, ProvisionerCapabilities, Result, Tenant, TenantId,
    async_trait,
};

pub const JWT_SECRET: &str = "0123456789abcdef0123456789abcdef-test-only";
pub const PASSWORD: &str = "Test123!";

/// argon2id with tiny costs: tests exercise the code, not the cost.
pub fn cheap_hasher() -> PasswordHasher {
    PasswordHasher::new(
        HasherConfig::default()
            .with_params(256, 1, 1)
            .with_max_concurrent(4),
    )
    .unwrap_or_else(|e| panic!("hasher: {e}"))
}

pub fn tokens() -> TokenService {
    TokenService::new(JwtConfig::hs256(JWT_SECRET)).unwrap_or_else(|e| panic!("tokens: {e}"))
}

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

/// How a [`FlakyProvisioner`] fails.
#[derive(Debug, Clone, Copy)]
pub enum Failure {
    /// `Unavailable` (retryable) for the first `n` calls, then the real provisioner.
    Transient(u32),
    /// `Unavailable` on every call.
    AlwaysTransient,
    /// `Internal` (not retryable) on every call.
    Permanent,
    /// Never returns (to test shutdown).
    Hang,
}

/// Wraps the in-memory provisioner and fails `provision` as told.
#[derive(Debug)]
pub struct FlakyProvisioner {
    pub inner: InMemoryProvisioner,
    pub failure: Failure,
    pub calls: AtomicU32,
}

impl FlakyProvisioner {
    pub fn new(data: Arc<InMemoryTenantData>, failure: Failure) -> Self {
        Self {
            inner: InMemoryProvisioner::new(data),
            failure,
            calls: AtomicU32::new(0),
        }
    }

    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("connection refused")]
struct Refused;

#[async_trait]
impl Provisioner for FlakyProvisioner {
    async fn provision(&self, tenant: &Tenant) -> Result<ProvisionReport> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        match self.failure {
            Failure::Transient(n) if call <= n => Err(Error::unavailable("postgres", Refused)),
            Failure::AlwaysTransient => Err(Error::unavailable("postgres", Refused)),
            Failure::Permanent => Err(Error::internal("template database is corrupt")),
            Failure::Hang => std::future::pending().await,
            Failure::Transient(_) => self.inner.provision(tenant).await,
        }
    }

    async fn deprovision(&self, tenant: &Tenant) -> Result<()> {
        self.inner.deprovision(tenant).await
    }

    async fn is_provisioned(&self, tenant: &Tenant) -> Result<bool> {
        self.inner.is_provisioned(tenant).await
    }

    fn capabilities(&self) -> ProvisionerCapabilities {
        self.inner.capabilities()
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
            Arc::new(InMemoryBackupStore::new()),
        ));
        let manager = TenantManager::builder()
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
        }
    }

    /// Registers `name` with owner `email` and the standard password.
    pub async fn register(
        &self,
        name: &str,
        email: &str,
    ) -> tenant_manager_core::manager::Registered {
        self.manager
            .register_organization(Registration::new(name, email, PASSWORD))
            .await
            .unwrap_or_else(|e| panic!("register {name}: {e}"))
    }
}
