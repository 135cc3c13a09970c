//! Running a background pass on a fixed interval until shutdown.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Runs `pass` every `interval` (a late tick waits; ticks never pile up) until `shutdown`,
/// which also ends a pass under way.
pub(crate) fn every<F, Fut>(
    interval: Duration,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
    mut pass: F,
) where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let token = shutdown.clone();
    tasks.spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = token.cancelled() => return,
                _ = ticks.tick() => {}
            }
            tokio::select! {
                () = token.cancelled() => return,
                () = pass() => {}
            }
        }
    });
}
