//! Readiness: is every backend this instance needs reachable right now?

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::future::join_all;
use serde::Serialize;
use tenant_manager::{BoxError, async_trait};

/// How long one probe may take before its component counts as down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Checks one backend.
#[async_trait]
pub(crate) trait Probe: std::fmt::Debug + Send + Sync + 'static {
    /// `Ok` when the backend answers.
    async fn check(&self) -> Result<(), BoxError>;
}

/// One component's state in the readiness answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct ComponentStatus {
    /// `up` or `down`.
    pub(crate) status: &'static str,
    /// Which backend serves it (`postgres`, `redis`, `memory`, ...).
    pub(crate) backend: &'static str,
    /// Why it is down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

#[derive(Debug, Clone)]
struct Component {
    name: String,
    backend: &'static str,
    probe: Option<Arc<dyn Probe>>,
}

/// The components of this instance and how to check them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Readiness {
    components: Vec<Component>,
}

impl Readiness {
    /// Adds a component that is checked by `probe`.
    #[must_use]
    pub(crate) fn with_probe(
        mut self,
        name: impl Into<String>,
        backend: &'static str,
        probe: Arc<dyn Probe>,
    ) -> Self {
        self.components.push(Component {
            name: name.into(),
            backend,
            probe: Some(probe),
        });
        self
    }

    /// Adds a component that is always up (an in-process adapter).
    #[must_use]
    pub(crate) fn with_in_process(mut self, name: &'static str) -> Self {
        self.components.push(Component {
            name: name.to_owned(),
            backend: "memory",
            probe: None,
        });
        self
    }

    /// Runs every probe concurrently, each bounded by a timeout.
    pub(crate) async fn check(&self) -> BTreeMap<String, ComponentStatus> {
        let checks = self.components.iter().map(|c| async move {
            let error = match &c.probe {
                None => None,
                Some(probe) => match tokio::time::timeout(PROBE_TIMEOUT, probe.check()).await {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(e.to_string()),
                    Err(_) => Some(format!("no answer within {PROBE_TIMEOUT:?}")),
                },
            };
            let status = ComponentStatus {
                status: if error.is_some() { "down" } else { "up" },
                backend: c.backend,
                error,
            };
            (c.name.clone(), status)
        });
        join_all(checks).await.into_iter().collect()
    }
}

/// Whether a background task (the provisioning worker) is still running.
#[derive(Debug, Clone)]
pub(crate) struct TaskAlive {
    alive: Arc<AtomicBool>,
}

impl TaskAlive {
    /// A task that is running.
    pub(crate) fn running() -> Self {
        Self {
            alive: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Marks the task stopped.
    pub(crate) fn stopped(&self) {
        self.alive.store(false, Ordering::Relaxed);
    }
}

#[async_trait]
impl Probe for TaskAlive {
    async fn check(&self) -> Result<(), BoxError> {
        if self.alive.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err("the task has stopped".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn in_process_components_are_up_and_probes_report_failures() {
        let stopped = TaskAlive::running();
        stopped.stopped();
        let readiness = Readiness::default()
            .with_in_process("database")
            .with_probe("worker", "worker", Arc::new(stopped))
            .with_probe("other", "worker", Arc::new(TaskAlive::running()));
        let report = readiness.check().await;
        assert_eq!(report["database"].status, "up");
        assert_eq!(report["worker"].status, "down");
        assert!(
            report["worker"]
                .error
                .as_deref()
                .is_some_and(|e| e.contains("stopped"))
        );
        assert_eq!(report["other"].status, "up");
    }
}
