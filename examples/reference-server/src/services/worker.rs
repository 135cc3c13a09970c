//! The in-process provisioning worker (with `ENABLE_ASYNC_PROVISIONING`).

use std::future::Future;
use std::sync::Arc;

use tenant_manager::worker::WorkerConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Services;
use crate::readiness::TaskAlive;
use crate::startup_error::StartupError;

/// A consumer name unique to this process: `worker-<host>-<pid>`.
pub(crate) fn consumer_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "local".to_owned());
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        .take(40)
        .collect();
    format!("worker-{host}-{}", std::process::id())
}

/// Starts the worker on the manager's queue; it stops (handing its job back) on `shutdown`.
/// Readiness reports it down if it ever stops while the server runs.
pub(super) fn start(
    services: Services,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) -> Result<Services, StartupError> {
    let worker = services
        .manager
        .worker(WorkerConfig::default().with_consumer(consumer_name()))
        .map_err(|e| StartupError::backend("provisioning worker", e))?;
    Ok(spawn_watched(
        services,
        tasks,
        shutdown,
        "worker",
        move |token| async move {
            worker.run(token).await;
        },
    ))
}

/// Spawns `run(shutdown)` on `tasks`, and adds readiness probe `name`, which reports down
/// once `run` returns.
pub(super) fn spawn_watched<F, Fut>(
    mut services: Services,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
    name: &'static str,
    run: F,
) -> Services
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let alive = TaskAlive::running();
    let flag = alive.clone();
    let task = run(shutdown.clone());
    tasks.spawn(async move {
        task.await;
        flag.stopped();
    });
    services.readiness = services.readiness.with_probe(name, name, Arc::new(alive));
    services
}
