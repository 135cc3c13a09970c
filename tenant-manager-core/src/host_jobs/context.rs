//! [`JobContext`]: what a host job runs inside: its tenant, a connection scoped to that tenant
//! (acquired on first use), and a tracing span naming both.

use std::fmt;
use std::sync::Arc;

use time::OffsetDateTime;

use crate::domain::{JobId, Tenant};
use crate::error::{Error, Result};
use crate::traits::{PoolManager, TenantConnection};

/// The context a host job runs in, handed to its [`JobHandler`](super::JobHandler).
///
/// The tenant is the one the job was enqueued for, read from the registry when the job
/// starts (so it is `Active` then); the connection comes from the pool manager for that tenant
/// only, and is returned to its pool when the context is dropped. Everything the handler does
/// inside [`span`](JobContext::span) (the worker runs the handler in it) carries the tenant's
/// id and slug, the job's kind and id.
pub struct JobContext<C: Send + 'static> {
    tenant: Tenant,
    job: JobId,
    kind: String,
    attempt: u32,
    enqueued_at: OffsetDateTime,
    pools: Option<Arc<dyn PoolManager<Connection = C>>>,
    conn: Option<TenantConnection<C>>,
    span: tracing::Span,
}

/// What the worker knows of the job it hands to a context.
pub(super) struct JobFacts {
    pub(super) job: JobId,
    pub(super) kind: String,
    pub(super) attempt: u32,
    pub(super) enqueued_at: OffsetDateTime,
}

impl<C: Send + 'static> JobContext<C> {
    pub(super) fn new(
        tenant: Tenant,
        facts: JobFacts,
        pools: Option<Arc<dyn PoolManager<Connection = C>>>,
        span: tracing::Span,
    ) -> Self {
        Self {
            tenant,
            job: facts.job,
            kind: facts.kind,
            attempt: facts.attempt,
            enqueued_at: facts.enqueued_at,
            pools,
            conn: None,
            span,
        }
    }

    /// The tenant the job runs for.
    pub fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    /// The job's id, stable across redeliveries (use it to make a handler idempotent).
    pub fn job_id(&self) -> JobId {
        self.job
    }

    /// The job's kind.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// Which delivery this is (1 for the first; a job held while its tenant was suspended
    /// keeps its number).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// When the job was enqueued.
    pub fn enqueued_at(&self) -> OffsetDateTime {
        self.enqueued_at
    }

    /// The span the handler runs in (fields `tenant_id`, `tenant_slug`, `job_kind`, `job_id`,
    /// `attempt`); enter it in tasks the handler spawns.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// A connection scoped to this job's tenant, acquired from the pool manager on the first
    /// call and kept for the rest of the job.
    ///
    /// # Errors
    /// [`Error::Internal`] when the jobs were built without a pool manager, or when the pool
    /// handed back a connection of another tenant (never used); the pool manager's errors
    /// (`PoolExhausted`, `Suspended`, `Unavailable`, ...) otherwise.
    pub async fn conn(&mut self) -> Result<&mut TenantConnection<C>> {
        if self.conn.is_none() {
            let pools = self.pools.as_ref().ok_or_else(|| {
                Error::internal("host jobs were built without a pool manager (with_pools)")
            })?;
            let conn = pools.acquire(&self.tenant).await?;
            if conn.tenant() != self.tenant.id {
                return Err(Error::internal(
                    "the pool manager handed out a connection of another tenant",
                ));
            }
            self.conn = Some(conn);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| Error::internal("job connection missing after acquire"))
    }
}

impl<C: Send + 'static> fmt::Debug for JobContext<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobContext")
            .field("tenant", &self.tenant.id)
            .field("slug", &self.tenant.slug)
            .field("job", &self.job)
            .field("kind", &self.kind)
            .field("attempt", &self.attempt)
            .field("connected", &self.conn.is_some())
            .finish_non_exhaustive()
    }
}
