//! [`JobHandler`]: the code a host registers for one of its job kinds.

use std::future::Future;

use async_trait::async_trait;

use super::context::JobContext;
use crate::error::Result;

/// Runs the jobs of one kind. Implemented for every
/// `Fn(JobContext<C>, serde_json::Value) -> impl Future<Output = Result<()>>`, so a closure or
/// an `async fn` is a handler.
///
/// # Contract
/// Jobs are delivered at least once: a handler may run again for the same
/// [`job_id`](JobContext::job_id) (after a crash, or when a lease was lost), so it must be
/// idempotent.
///
/// # Errors
/// Any error marks the job failed: it is retried with exponential backoff and dead-lettered
/// once it has used the queue's attempts.
#[async_trait]
pub trait JobHandler<C: Send + 'static>: Send + Sync + 'static {
    /// Runs one job with its payload, inside its tenant's context.
    async fn run(&self, ctx: JobContext<C>, payload: serde_json::Value) -> Result<()>;
}

#[async_trait]
impl<C, F, Fut> JobHandler<C> for F
where
    C: Send + 'static,
    F: Fn(JobContext<C>, serde_json::Value) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    async fn run(&self, ctx: JobContext<C>, payload: serde_json::Value) -> Result<()> {
        (self)(ctx, payload).await
    }
}
