//! Observing provisioning steps: metrics, tracing, and fault injection in tests.

use std::fmt;

use tenant_manager_core::{ProvisionStep, Result, Tenant};

/// When a [`StepHook`] is called for a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StepPhase {
    /// The step's work is done but not yet recorded: a crash here makes the next run redo it.
    Done,
    /// The step is recorded: the next run skips it.
    Recorded,
}

/// Called by the provisioner around each step it runs.
///
/// # Contract
/// - Called with [`StepPhase::Done`] after a step's work and before it is recorded, then with
///   [`StepPhase::Recorded`] after; never for steps skipped because they were already done.
/// - Runs while the tenant's provisioning lock is held: keep it short and never block.
///
/// # Errors
/// An error stops provisioning there, exactly as a crash would: the step stays unrecorded
/// (phase `Done`) or recorded (phase `Recorded`), the failure is recorded, and the next call
/// to `provision` resumes. Tests use this to prove every step resumable.
pub trait StepHook: fmt::Debug + Send + Sync + 'static {
    /// Observes one step of one tenant.
    fn on_step(&self, tenant: &Tenant, step: ProvisionStep, phase: StepPhase) -> Result<()>;
}
