//! Conformance suite of [`Provisioner`].
//!
//! An adapter runs it by writing a factory that returns a provisioner on its real backend
//! (with a guard that cleans up, if any) and expanding the macro in a test file:
//!
//! ```text
//! async fn provisioner() -> Fixture<dyn Provisioner> {
//!     let db = TestDatabase::create().await;
//!     let provisioner = PostgresProvisioner::new(/* ... */);
//!     Fixture::with_guard(Arc::new(provisioner), db)
//! }
//! tenant_manager_core::provisioner_conformance!(provisioner);
//! ```
//!
//! Tenants are built by [`sample_tenant_record`] (status `Provisioning`, a random slug, the
//! default [`StorageNaming`](crate::StorageNaming)'s placement on server `default` with
//! shared database `tm_shared`); an
//! adapter that needs them in its registry first can wrap itself in a decorator that
//! registers each tenant before provisioning it. Cases run for every isolation mode the
//! provisioner declares in its [`capabilities`](Provisioner::capabilities), check that the
//! others are refused, and deprovision what they provisioned.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use super::run_concurrently;
use super::support::{expect_invalid, unique_slug};
use crate::domain::{Isolation, NewTenant, Tenant, TenantStatus};
use crate::traits::{ProvisionStep, Provisioner};

/// Expands one `#[tokio::test]` per provisioner case, each on a fresh fixture from `$factory`
/// (`async fn() -> Fixture<dyn Provisioner>`).
#[macro_export]
macro_rules! provisioner_conformance {
    ($factory:path) => {
        $crate::__conformance_cases!($factory; provisioner;
            provision_runs_every_step_in_order,
            second_provision_runs_no_step,
            concurrent_provision_runs_each_step_once,
            deprovision_is_idempotent,
            new_tenant_is_not_provisioned,
            unsupported_isolation_is_refused,
            tenants_are_independent,
        );
    };
}

const ISOLATIONS: [Isolation; 3] = [Isolation::Database, Isolation::Schema, Isolation::Shared];

/// A tenant record in status `Provisioning` with a random slug, as a registry would hand it to
/// a provisioner.
pub fn sample_tenant_record(isolation: Isolation) -> Tenant {
    let mut tenant = NewTenant::new(unique_slug("cfp"), "Provisioned Tenant", isolation)
        .expect("valid tenant")
        .into_tenant(OffsetDateTime::now_utc());
    tenant.status = TenantStatus::Provisioning;
    tenant
}

/// The isolation modes the provisioner declares; at least one.
fn supported(p: &dyn Provisioner) -> Vec<Isolation> {
    let caps = p.capabilities();
    let modes: Vec<Isolation> = ISOLATIONS
        .into_iter()
        .filter(|i| caps.supports(*i))
        .collect();
    assert!(
        !modes.is_empty(),
        "a provisioner supports at least one isolation"
    );
    modes
}

async fn cleanup(p: &dyn Provisioner, tenants: &[Tenant]) {
    for tenant in tenants {
        p.deprovision(tenant).await.expect("deprovision");
    }
}

/// A first provision runs the steps in order, from `Reserved` to `Active`, each once.
pub async fn provision_runs_every_step_in_order(p: &dyn Provisioner) {
    for isolation in supported(p) {
        let tenant = sample_tenant_record(isolation);
        let report = p.provision(&tenant).await.expect("provision");
        let steps = &report.steps_run;
        assert_eq!(
            steps.first(),
            Some(&ProvisionStep::Reserved),
            "{isolation}: {steps:?}"
        );
        assert_eq!(
            steps.last(),
            Some(&ProvisionStep::Active),
            "{isolation}: {steps:?}"
        );
        assert!(
            steps.windows(2).all(|w| w[0] < w[1]),
            "{isolation}: steps out of order or repeated: {steps:?}"
        );
        assert!(p.is_provisioned(&tenant).await.expect("is_provisioned"));
        cleanup(p, &[tenant]).await;
    }
}

/// A second provision of a provisioned tenant runs no step and leaves it provisioned.
pub async fn second_provision_runs_no_step(p: &dyn Provisioner) {
    for isolation in supported(p) {
        let tenant = sample_tenant_record(isolation);
        p.provision(&tenant).await.expect("first");
        let again = p.provision(&tenant).await.expect("second");
        assert!(
            again.steps_run.is_empty(),
            "{isolation}: {:?}",
            again.steps_run
        );
        assert!(p.is_provisioned(&tenant).await.expect("is_provisioned"));
        cleanup(p, &[tenant]).await;
    }
}

/// Concurrent provisions of one tenant all succeed, and no step runs twice between them.
pub async fn concurrent_provision_runs_each_step_once(p: &dyn Provisioner) {
    for isolation in supported(p) {
        let tenant = sample_tenant_record(isolation);
        let reports = run_concurrently(8, |_| p.provision(&tenant));
        let mut runs: BTreeMap<ProvisionStep, usize> = BTreeMap::new();
        for report in reports {
            let report = report.expect("concurrent provision");
            for step in report.steps_run {
                *runs.entry(step).or_default() += 1;
            }
        }
        assert!(runs.values().all(|n| *n == 1), "{isolation}: {runs:?}");
        assert_eq!(runs.keys().next(), Some(&ProvisionStep::Reserved));
        assert_eq!(runs.keys().last(), Some(&ProvisionStep::Active));
        assert!(p.is_provisioned(&tenant).await.expect("is_provisioned"));
        cleanup(p, &[tenant]).await;
    }
}

/// Deprovisioning drops the storage; doing it again, or for a tenant never provisioned, is
/// `Ok`. Provisioning again afterwards runs every step again.
pub async fn deprovision_is_idempotent(p: &dyn Provisioner) {
    for isolation in supported(p) {
        let tenant = sample_tenant_record(isolation);
        p.provision(&tenant).await.expect("provision");
        p.deprovision(&tenant).await.expect("deprovision");
        assert!(!p.is_provisioned(&tenant).await.expect("is_provisioned"));
        p.deprovision(&tenant).await.expect("second deprovision");
        let never = sample_tenant_record(isolation);
        p.deprovision(&never).await.expect("deprovision of nothing");
        let report = p.provision(&tenant).await.expect("provision again");
        assert_eq!(report.steps_run.first(), Some(&ProvisionStep::Reserved));
        assert_eq!(report.steps_run.last(), Some(&ProvisionStep::Active));
        assert!(p.is_provisioned(&tenant).await.expect("is_provisioned"));
        cleanup(p, &[tenant]).await;
    }
}

/// A tenant nobody provisioned is not provisioned.
pub async fn new_tenant_is_not_provisioned(p: &dyn Provisioner) {
    for isolation in supported(p) {
        let tenant = sample_tenant_record(isolation);
        assert!(!p.is_provisioned(&tenant).await.expect("is_provisioned"));
    }
}

/// An isolation mode outside the capabilities is refused as `InvalidInput` on `isolation`,
/// and leaves nothing provisioned.
pub async fn unsupported_isolation_is_refused(p: &dyn Provisioner) {
    let caps = p.capabilities();
    for isolation in ISOLATIONS.into_iter().filter(|i| !caps.supports(*i)) {
        let tenant = sample_tenant_record(isolation);
        expect_invalid(p.provision(&tenant).await, "isolation");
        assert!(!p.is_provisioned(&tenant).await.expect("is_provisioned"));
    }
}

/// Deprovisioning one tenant leaves the others provisioned.
pub async fn tenants_are_independent(p: &dyn Provisioner) {
    let tenants: Vec<Tenant> = supported(p)
        .into_iter()
        .flat_map(|i| [sample_tenant_record(i), sample_tenant_record(i)])
        .collect();
    for tenant in &tenants {
        p.provision(tenant).await.expect("provision");
    }
    for (i, tenant) in tenants.iter().enumerate() {
        p.deprovision(tenant).await.expect("deprovision");
        assert!(!p.is_provisioned(tenant).await.expect("is_provisioned"));
        for rest in &tenants[i + 1..] {
            assert!(
                p.is_provisioned(rest).await.expect("is_provisioned"),
                "deprovisioning {} touched {}",
                tenant.slug,
                rest.slug
            );
        }
    }
}
