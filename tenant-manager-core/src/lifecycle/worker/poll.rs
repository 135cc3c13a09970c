//! The poll loop every job worker of this crate runs: one step after another until shutdown,
//! with a growing, jittered pause after each failed step.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::backoff::random_backoff;
use super::config::WorkerConfig;
use crate::error::Result;

/// Longest pause after the queue itself fails, before polling again.
const MAX_QUEUE_PAUSE: Duration = Duration::from_secs(30);

/// Runs `step` until `shutdown` is cancelled. After a failed step it logs the error and
/// waits [`random_backoff`] (by the number of failures in a row, capped at 30 s) before the
/// next one, or stops at once if `shutdown` is cancelled meanwhile; a step that succeeds
/// resets the count. `name` (e.g. "provisioning worker") begins every log line.
pub(crate) async fn poll_loop<T, F, Fut>(
    name: &str,
    config: &WorkerConfig,
    shutdown: &CancellationToken,
    mut step: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    tracing::info!(consumer = %config.consumer, "{name} started");
    let mut failures = 0_u32;
    while !shutdown.is_cancelled() {
        match step().await {
            Ok(_) => failures = 0,
            Err(e) => {
                failures = failures.saturating_add(1);
                let pause = random_backoff(
                    failures,
                    config.retry_base,
                    config.retry_max.min(MAX_QUEUE_PAUSE),
                );
                tracing::warn!(error = %e, pause = ?pause, "{name}: job handling failed");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
    tracing::info!(consumer = %config.consumer, "{name} stopped");
}
