//! The mover of tenants between the Postgres servers, and its fault hook for tests
//! (`MOVE_FAULT_STALL_AFTER`: a move stalls for good once it has recorded that step, so a test
//! can kill the process there and show that a restart resumes the move).

use std::sync::Arc;

use tenant_manager::postgres::{MoveHook, PgDumpBackup, PostgresMover, PostgresProvisioner};
use tenant_manager::{MoveStep, Result, TenantId, async_trait};

use crate::config::Config;

/// Stalls every move for good once it has recorded `step`.
#[derive(Debug)]
struct StallAfter {
    step: MoveStep,
}

#[async_trait]
impl MoveHook for StallAfter {
    async fn recorded(&self, tenant: TenantId, step: MoveStep) -> Result<()> {
        if step == self.step {
            tracing::warn!(tenant = %tenant, step = step.as_str(), "MOVE_FAULT_STALL_AFTER: the move stalls here");
            std::future::pending::<()>().await;
        }
        Ok(())
    }
}

/// The mover over the provisioner and the backups, with the fault hook when configured.
pub(crate) fn mover(
    config: &Config,
    provisioner: &PostgresProvisioner,
    backup: &PgDumpBackup,
) -> Arc<PostgresMover> {
    let mover = PostgresMover::new(provisioner.clone(), backup.clone());
    Arc::new(match config.moves.stall_after {
        Some(step) => mover.with_hook(Arc::new(StallAfter { step })),
        None => mover,
    })
}
