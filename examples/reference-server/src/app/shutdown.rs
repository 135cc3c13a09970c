//! Shutdown on SIGTERM or ctrl-c.

use tokio_util::sync::CancellationToken;

/// Waits for SIGTERM or ctrl-c, then cancels `token`. Returns early when `token` is
/// cancelled by someone else.
pub(crate) async fn cancel_on_signal(token: CancellationToken) {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("ctrl-c received: shutting down"),
        () = terminate => tracing::info!("SIGTERM received: shutting down"),
        () = token.cancelled() => return,
    }
    token.cancel();
}
