//! The tenant life-cycle jobs the manager queues and the
//! [`ProvisioningWorker`](super::worker::ProvisioningWorker) runs.

use serde_json::json;

use crate::domain::TenantId;
use crate::error::Result;
use crate::traits::{Job, NewJob};

/// Kind of the job that provisions a tenant's storage and marks it `Active` (or `Failed`).
pub const PROVISION_TENANT: &str = "tenant.provision";

/// Kind of the job that drops a `Deleting` tenant's storage and marks it `Deleted`.
pub const DEPROVISION_TENANT: &str = "tenant.deprovision";

/// Kind of the job that runs a tenant's unfinished move to another database server up to
/// writes resumed.
pub const MOVE_TENANT: &str = "tenant.move";

/// Kind of the job that drops a moved tenant's old storage once its grace period is over.
pub const MOVE_CLEANUP: &str = "tenant.move_cleanup";

/// A job that runs `tenant`'s unfinished move.
///
/// # Errors
/// None in practice; the kind is a valid constant.
pub fn move_job(tenant: TenantId) -> Result<NewJob> {
    tenant_job(MOVE_TENANT, tenant)
}

/// A job that drops `tenant`'s storage left behind by its last move.
///
/// # Errors
/// None in practice; the kind is a valid constant.
pub fn move_cleanup_job(tenant: TenantId) -> Result<NewJob> {
    tenant_job(MOVE_CLEANUP, tenant)
}

/// A job that provisions `tenant`.
///
/// # Errors
/// None in practice; the kind is a valid constant.
pub fn provision_job(tenant: TenantId) -> Result<NewJob> {
    tenant_job(PROVISION_TENANT, tenant)
}

/// A job that deprovisions `tenant`.
///
/// # Errors
/// None in practice; the kind is a valid constant.
pub fn deprovision_job(tenant: TenantId) -> Result<NewJob> {
    tenant_job(DEPROVISION_TENANT, tenant)
}

fn tenant_job(kind: &str, tenant: TenantId) -> Result<NewJob> {
    NewJob::new(kind, Some(tenant), json!({ "tenant_id": tenant }))
}

/// The tenant a job is about: its `tenant_id`, else the payload's `tenant_id`.
pub fn job_tenant(job: &Job) -> Option<TenantId> {
    job.tenant_id.or_else(|| {
        job.payload
            .get("tenant_id")
            .and_then(serde_json::Value::as_str)
            .and_then(|s| s.parse().ok())
    })
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::*;
    use crate::domain::JobId;

    #[test]
    fn jobs_carry_their_tenant_in_both_places() -> Result<()> {
        let tenant = TenantId::new();
        let new = provision_job(tenant)?;
        assert_eq!(new.kind, PROVISION_TENANT);
        let job = Job::new(
            JobId::new(),
            new.kind,
            None,
            new.payload,
            1,
            None,
            OffsetDateTime::UNIX_EPOCH,
            "r".into(),
        );
        assert_eq!(job_tenant(&job), Some(tenant));
        Ok(())
    }
}
