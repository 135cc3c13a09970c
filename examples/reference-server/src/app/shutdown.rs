//! Shutdown on SIGTERM or ctrl-c.

use tokio_util::sync::CancellationToken;

/// The signal that asked for a shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// ctrl-c (SIGINT).
    CtrlC,
    /// SIGTERM.
    Terminate,
}

/// Resolves on SIGTERM or ctrl-c, with the one that came. Never resolves where a signal
/// cannot be listened to.
pub async fn signalled() -> Signal {
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
        () = ctrl_c => Signal::CtrlC,
        () = terminate => Signal::Terminate,
    }
}

/// Waits for SIGTERM or ctrl-c, then cancels `token`. Returns early when `token` is
/// cancelled by someone else.
pub(crate) async fn cancel_on_signal(token: CancellationToken) {
    tokio::select! {
        signal = signalled() => match signal {
            Signal::CtrlC => tracing::info!("ctrl-c received: shutting down"),
            Signal::Terminate => tracing::info!("SIGTERM received: shutting down"),
        },
        () = token.cancelled() => return,
    }
    token.cancel();
}
