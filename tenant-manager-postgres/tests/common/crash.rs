//! A step hook that fails provisioning once at one step and phase, as a crash there would.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tenant_manager_core::{Error, ProvisionStep, Result, Tenant};
use tenant_manager_postgres::{PostgresProvisioner, StepHook, StepPhase};

/// A clone of `provisioner` that fails once, the first time `step` reaches `phase`.
pub fn crashing_once(
    provisioner: &PostgresProvisioner,
    step: ProvisionStep,
    phase: StepPhase,
) -> PostgresProvisioner {
    provisioner
        .clone()
        .with_step_hook(CrashOnce::at(step, phase))
}

/// Fails once at one step and phase, as a crash there would.
#[derive(Debug)]
struct CrashOnce {
    step: ProvisionStep,
    phase: StepPhase,
    fired: AtomicBool,
}

impl CrashOnce {
    /// A hook that fails the first time `step` reaches `phase`.
    fn at(step: ProvisionStep, phase: StepPhase) -> Arc<Self> {
        Arc::new(Self {
            step,
            phase,
            fired: AtomicBool::new(false),
        })
    }
}

impl StepHook for CrashOnce {
    fn on_step(&self, _: &Tenant, step: ProvisionStep, phase: StepPhase) -> Result<()> {
        if step == self.step && phase == self.phase && !self.fired.swap(true, Ordering::SeqCst) {
            return Err(Error::internal("simulated crash"));
        }
        Ok(())
    }
}
