//! Provisioning killed after each step, before and after recording it, resumes to a working
//! tenant; a failure is recorded and the registry takes the tenant through `Failed` and back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use tenant_manager_core::{Isolation, ProvisionStep, Provisioner, TenantRegistry, TenantStatus};
use tenant_manager_postgres::StepPhase;

use common::crash::crashing_once;
use common::{Env, add_companies, company_names};

async fn crash_and_resume_every_step(isolation: Isolation) {
    let env = Env::new().await;
    let mut n = 0;
    for step in ProvisionStep::ALL {
        for phase in [StepPhase::Done, StepPhase::Recorded] {
            n += 1;
            let provisioner = crashing_once(&env.provisioner, step, phase);
            let tenant = env.register(&format!("c{n}"), isolation).await;

            let err = provisioner.provision(&tenant).await.expect_err("crashed");
            assert_eq!(err.code(), "internal", "{err:?}");
            let status = provisioner.status(tenant.id).await.expect("status");
            assert_eq!(
                status.failed_step,
                Some(step),
                "{isolation} {step:?} {phase:?}"
            );
            // A crash after the last step was recorded leaves the tenant fully provisioned.
            let complete = (step, phase) == (ProvisionStep::Active, StepPhase::Recorded);
            assert_eq!(
                provisioner
                    .is_provisioned(&tenant)
                    .await
                    .expect("is_provisioned"),
                complete
            );
            let failed = env
                .registry
                .transition(tenant.id, TenantStatus::Failed, status.last_error.clone())
                .await
                .expect("to failed");
            assert_eq!(
                failed.status_reason.as_deref(),
                Some("internal error: simulated crash")
            );

            env.registry
                .transition(tenant.id, TenantStatus::Provisioning, None)
                .await
                .expect("retry");
            let report = provisioner.provision(&tenant).await.expect("resumed");
            let first = match phase {
                StepPhase::Done => Some(step),
                _ => ProvisionStep::ALL.into_iter().find(|s| *s > step),
            };
            assert_eq!(
                report.steps_run.first().copied(),
                first,
                "{isolation} {step:?} {phase:?}"
            );
            assert!(
                provisioner
                    .is_provisioned(&tenant)
                    .await
                    .expect("is_provisioned")
            );
            let status = provisioner.status(tenant.id).await.expect("status");
            assert_eq!(status.done, ProvisionStep::ALL.to_vec());
            assert_eq!((status.attempts, status.failed_step), (2, None));
            env.registry
                .transition(tenant.id, TenantStatus::Active, None)
                .await
                .expect("active");

            // The resumed tenant's storage works.
            add_companies(&env, &tenant, &["Initech"]).await;
            assert_eq!(
                company_names(&env, &tenant).await,
                vec!["Initech".to_owned()]
            );
            provisioner.deprovision(&tenant).await.expect("deprovision");
        }
    }
}

#[tokio::test]
async fn database_provisioning_resumes_after_a_crash_at_any_step() {
    crash_and_resume_every_step(Isolation::Database).await;
}

#[tokio::test]
async fn schema_provisioning_resumes_after_a_crash_at_any_step() {
    crash_and_resume_every_step(Isolation::Schema).await;
}

#[tokio::test]
async fn shared_provisioning_resumes_after_a_crash_at_any_step() {
    crash_and_resume_every_step(Isolation::Shared).await;
}

#[tokio::test]
async fn database_tenants_can_be_provisioned_without_the_template() {
    let env = Env::with(common::migrations(), |c| c.with_template(false)).await;
    let tenant = env.register("alpha", Isolation::Database).await;
    let report = env.provisioner.provision(&tenant).await.expect("provision");
    assert!(!report.used_template);
    add_companies(&env, &tenant, &["Initech"]).await;
    assert_eq!(
        company_names(&env, &tenant).await,
        vec!["Initech".to_owned()]
    );
    let server = tenant_manager_core::ServerId::default_server();
    assert!(
        env.provisioner
            .drop_templates(&server, false)
            .await
            .expect("none")
            .is_empty()
    );
}

#[tokio::test]
async fn templates_are_built_once_per_migration_set_and_pruned() {
    let env = Env::new().await;
    let server = tenant_manager_core::ServerId::default_server();
    let name = env
        .provisioner
        .prepare_template(&server)
        .await
        .expect("template");
    assert_eq!(
        env.provisioner
            .prepare_template(&server)
            .await
            .expect("again"),
        name
    );
    let a = env.register("alpha", Isolation::Database).await;
    let report = env.provisioner.provision(&a).await.expect("provision");
    assert!(report.used_template);
    assert_eq!(
        env.provisioner
            .status(a.id)
            .await
            .expect("status")
            .used_template,
        Some(name.clone())
    );
    assert!(
        env.provisioner
            .drop_templates(&server, true)
            .await
            .expect("keep")
            .is_empty()
    );
    assert_eq!(
        env.provisioner
            .drop_templates(&server, false)
            .await
            .expect("drop"),
        vec![name]
    );
}
