//! [`HostJobs`]: the job kinds a host registered, and the enqueue that ties a job to its
//! tenant.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::handler::JobHandler;
use crate::domain::{JobId, TenantId, TenantStatus};
use crate::error::{Error, Result};
use crate::traits::{JobQueue, NewJob, PoolManager, ScheduleStore, TenantRegistry};

/// Prefix of the tenant life-cycle kinds, which host kinds may not use.
const RESERVED_PREFIX: &str = "tenant.";

pub(super) type Handlers<C> = BTreeMap<String, Arc<dyn JobHandler<C>>>;

/// The job kinds of a host application with their handlers, over one [`JobQueue`].
///
/// Every job belongs to one tenant: [`enqueue`](HostJobs::enqueue) takes the tenant's id and
/// stores it with the job, and the [`HostJobWorker`](super::HostJobWorker) runs the job for
/// that tenant and no other. `C` is the connection type of the pool manager handlers get
/// their scoped connection from (`sqlx::PgConnection` with Postgres; `()` without pools).
///
/// Give it a queue of its own (not the provisioning worker's): its worker hands back jobs of
/// kinds it does not know. Clones share the same kinds.
pub struct HostJobs<C: Send + 'static> {
    pub(super) queue: Arc<dyn JobQueue>,
    pub(super) registry: Arc<dyn TenantRegistry>,
    pub(super) pools: Option<Arc<dyn PoolManager<Connection = C>>>,
    pub(super) schedules: Option<Arc<dyn ScheduleStore>>,
    pub(super) handlers: Arc<Handlers<C>>,
}

impl<C: Send + 'static> Clone for HostJobs<C> {
    fn clone(&self) -> Self {
        Self {
            queue: Arc::clone(&self.queue),
            registry: Arc::clone(&self.registry),
            pools: self.pools.clone(),
            schedules: self.schedules.clone(),
            handlers: Arc::clone(&self.handlers),
        }
    }
}

impl<C: Send + 'static> fmt::Debug for HostJobs<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostJobs")
            .field("kinds", &self.handlers.keys().collect::<Vec<_>>())
            .field("queue", &self.queue)
            .field("pools", &self.pools.is_some())
            .field("schedules", &self.schedules)
            .finish_non_exhaustive()
    }
}

/// Builds [`HostJobs`]: the queue, the registry the tenants are read from, the pool manager
/// (optional) and one handler per kind.
pub struct HostJobsBuilder<C: Send + 'static> {
    queue: Arc<dyn JobQueue>,
    registry: Arc<dyn TenantRegistry>,
    pools: Option<Arc<dyn PoolManager<Connection = C>>>,
    schedules: Option<Arc<dyn ScheduleStore>>,
    handlers: Handlers<C>,
}

impl<C: Send + 'static> fmt::Debug for HostJobsBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostJobsBuilder")
            .field("kinds", &self.handlers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl<C: Send + 'static> HostJobs<C> {
    /// A builder over `queue` (a queue of its own) and `registry`.
    pub fn builder(
        queue: Arc<dyn JobQueue>,
        registry: Arc<dyn TenantRegistry>,
    ) -> HostJobsBuilder<C> {
        HostJobsBuilder {
            queue,
            registry,
            pools: None,
            schedules: None,
            handlers: BTreeMap::new(),
        }
    }

    /// The registered kinds, sorted.
    pub fn kinds(&self) -> impl Iterator<Item = &str> {
        self.handlers.keys().map(String::as_str)
    }

    /// Whether `kind` is registered.
    pub fn is_registered(&self, kind: &str) -> bool {
        self.handlers.contains_key(kind)
    }

    /// The queue the jobs go to.
    pub fn queue(&self) -> &Arc<dyn JobQueue> {
        &self.queue
    }

    /// Enqueues a job of `kind` for `tenant`, run as soon as a worker is free.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on field `kind` when it is not registered;
    /// [`Error::NotFound`] when the tenant does not exist; [`Error::Suspended`] or
    /// [`Error::NotReady`] when it is not `Active`; the queue's errors (a payload too large is
    /// `InvalidInput` on `payload`).
    pub async fn enqueue(
        &self,
        tenant: TenantId,
        kind: &str,
        payload: serde_json::Value,
    ) -> Result<JobId> {
        self.enqueue_job(tenant, kind, payload, Duration::ZERO)
            .await
    }

    /// Enqueues a job of `kind` for `tenant`, first run once `delay` has passed (a scheduled
    /// job). The tenant is checked now and again when the job runs.
    ///
    /// # Errors
    /// As [`enqueue`](Self::enqueue), and [`Error::InvalidInput`] on field `delay` when it is
    /// longer than [`MAX_JOB_DELAY`](crate::traits::MAX_JOB_DELAY).
    pub async fn enqueue_in(
        &self,
        tenant: TenantId,
        kind: &str,
        payload: serde_json::Value,
        delay: Duration,
    ) -> Result<JobId> {
        self.enqueue_job(tenant, kind, payload, delay).await
    }

    /// Checks `kind` is registered and `tenant` is `Active`.
    pub(super) async fn check(&self, tenant: TenantId, kind: &str) -> Result<()> {
        if !self.is_registered(kind) {
            return Err(Error::invalid("kind", "is not a registered job kind"));
        }
        let record = self.registry.get_tenant(tenant).await?;
        match record.status {
            TenantStatus::Active => Ok(()),
            TenantStatus::Suspended => Err(Error::Suspended { tenant }),
            status => Err(Error::NotReady { tenant, status }),
        }
    }

    async fn enqueue_job(
        &self,
        tenant: TenantId,
        kind: &str,
        payload: serde_json::Value,
        delay: Duration,
    ) -> Result<JobId> {
        let job = NewJob::new(kind, Some(tenant), payload)?.with_delay(delay)?;
        self.check(tenant, kind).await?;
        let id = self.queue.enqueue(job).await?;
        tracing::debug!(job = %id, kind, tenant_id = %tenant, "host job enqueued");
        Ok(id)
    }
}

impl<C: Send + 'static> HostJobsBuilder<C> {
    /// Hands each job a connection scoped to its tenant from `pools`
    /// ([`JobContext::conn`](super::JobContext::conn)).
    #[must_use]
    pub fn with_pools(mut self, pools: Arc<dyn PoolManager<Connection = C>>) -> Self {
        self.pools = Some(pools);
        self
    }

    /// Keeps recurring schedules in `schedules` (shared by every instance), which
    /// [`HostJobs::schedule`] adds to and the workers fire.
    #[must_use]
    pub fn with_schedules(mut self, schedules: Arc<dyn ScheduleStore>) -> Self {
        self.schedules = Some(schedules);
        self
    }

    /// Registers `handler` for the jobs of `kind`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on field `kind` when it is not 1 to 64 of `[a-z0-9_.]`, starts
    /// with the life cycle's `tenant.`, or is registered already.
    pub fn register(mut self, kind: &str, handler: impl JobHandler<C>) -> Result<Self> {
        NewJob::new(kind, None, serde_json::Value::Null)?;
        if kind.starts_with(RESERVED_PREFIX) {
            return Err(Error::invalid(
                "kind",
                "must not start with `tenant.` (the life cycle's kinds)",
            ));
        }
        if self.handlers.contains_key(kind) {
            return Err(Error::invalid("kind", "is registered already"));
        }
        self.handlers.insert(kind.to_owned(), Arc::new(handler));
        Ok(self)
    }

    /// The jobs.
    pub fn build(self) -> HostJobs<C> {
        HostJobs {
            queue: self.queue,
            registry: self.registry,
            pools: self.pools,
            schedules: self.schedules,
            handlers: Arc::new(self.handlers),
        }
    }
}
