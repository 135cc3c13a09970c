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
    super::periodic::every(interval, tasks, shutdown, move || {
        let store = store.clone();
        async move {
            match store.prune_expired(OffsetDateTime::now_utc()).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "expired refresh tokens deleted"),
                Err(error) => tracing::warn!(%error, "refresh token pruning failed"),
            }
        }
    });
}
