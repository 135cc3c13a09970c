//! A provisioner that fails, hangs or dawdles as told, for the failure paths of the
//! provisioning worker (retries, dead letters, shutdown, leases outliving a visibility
//! timeout) in this crate's tests and in the adapters' tests on their real queues.
//!
//! ```no_run
//! use std::sync::Arc;
//! use tenant_manager_core::memory::{InMemoryProvisioner, InMemoryTenantData};
//! use tenant_manager_core::testing::faults::{Failure, FlakyProvisioner};
//!
//! let real = Arc::new(InMemoryProvisioner::new(Arc::new(InMemoryTenantData::new())));
//! let flaky = FlakyProvisioner::new(real, Failure::Transient(2));
//! assert_eq!(flaky.calls(), 0);
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::domain::Tenant;
use crate::error::{Error, Result};
use crate::traits::{ProvisionReport, Provisioner, ProvisionerCapabilities};

/// How a [`FlakyProvisioner`] answers `provision`.
#[derive(Debug, Clone, Copy)]
pub enum Failure {
    /// `Unavailable` (retryable) for the first `n` calls, then the real provisioner.
    Transient(u32),
    /// `Unavailable` on every call.
    AlwaysTransient,
    /// `Internal` (not retryable) on every call.
    Permanent,
    /// Never returns (to test shutdown, or a worker killed mid-job).
    Hang,
    /// The real provisioner, after this much longer (a job outliving its lease).
    Slow(Duration),
}

/// Wraps a real provisioner and answers `provision` as its [`Failure`] says, counting and
/// announcing each call; the other methods are the wrapped provisioner's.
#[derive(Debug)]
pub struct FlakyProvisioner {
    inner: Arc<dyn Provisioner>,
    failure: Failure,
    calls: AtomicU32,
    called: Notify,
}

impl FlakyProvisioner {
    /// `inner` (the in-memory provisioner, say) failing as `failure` says.
    pub fn new(inner: Arc<dyn Provisioner>, failure: Failure) -> Self {
        Self {
            inner,
            failure,
            calls: AtomicU32::new(0),
            called: Notify::new(),
        }
    }

    /// How many times `provision` was called.
    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Waits for the next call of `provision`; a call made while nobody waited counts (one at
    /// most, as [`Notify::notify_one`] keeps).
    pub async fn called(&self) {
        self.called.notified().await;
    }
}

#[derive(Debug, thiserror::Error)]
#[error("connection refused")]
struct Refused;

#[async_trait]
impl Provisioner for FlakyProvisioner {
    async fn provision(&self, tenant: &Tenant) -> Result<ProvisionReport> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        self.called.notify_one();
        match self.failure {
            Failure::Transient(n) if call <= n => Err(Error::unavailable("postgres", Refused)),
            Failure::AlwaysTransient => Err(Error::unavailable("postgres", Refused)),
            Failure::Permanent => Err(Error::internal("template database is corrupt")),
            Failure::Hang => std::future::pending().await,
            Failure::Slow(delay) => {
                tokio::time::sleep(delay).await;
                self.inner.provision(tenant).await
            }
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
