//! Deletes expired refresh tokens every `REFRESH_TOKEN_PRUNE_INTERVAL_MS`.

use std::sync::Arc;
use std::time::Duration;

use tenant_manager::RefreshTokenStore;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Prunes `store` every `interval` until `shutdown`; a failed prune is logged and retried at
/// the next tick.
pub(crate) fn start(
    store: Arc<dyn RefreshTokenStore>,
    interval: Duration,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) {
    let token = shutdown.clone();
    tasks.spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = token.cancelled() => return,
                _ = ticks.tick() => {}
            }
            match store.prune_expired(OffsetDateTime::now_utc()).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "expired refresh tokens deleted"),
                Err(error) => tracing::warn!(%error, "refresh token pruning failed"),
            }
        }
    });
}
