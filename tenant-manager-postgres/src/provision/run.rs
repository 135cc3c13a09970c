//! Running a tenant's provisioning steps, and dropping its storage: [`Provisioner`] for
//! [`PostgresProvisioner`].

use std::time::Instant;

use async_trait::async_trait;
use sqlx::Connection;
use tenant_manager_core::{
    Entity, Error, Isolation, ProvisionReport, ProvisionStep, Provisioner, ProvisionerCapabilities,
    Result, Tenant,
};
use tokio::sync::SemaphorePermit;

use super::steps::{self, Change};
use super::{PostgresProvisioner, StepPhase, database, schema, shared};
use crate::migrate::record::{self, error_text};
use crate::migrate::tenant::{migrate_tenant, scope_of};
use crate::pg::{self, SqlxResultExt, TenantLock};
use crate::storage::Target;

impl PostgresProvisioner {
    /// Waits for one of the slots that bound concurrent runs.
    async fn run_slot(&self) -> Result<SemaphorePermit<'_>> {
        self.runs
            .acquire()
            .await
            .map_err(|_| Error::internal("the provisioner's run slots are closed"))
    }

    fn check_supported(&self, isolation: Isolation) -> Result<()> {
        if self.capabilities().supports(isolation) {
            Ok(())
        } else {
            Err(Error::invalid(
                "isolation",
                "shared isolation needs shared migrations (TenantMigrations::with_shared)",
            ))
        }
    }

    fn observe(&self, tenant: &Tenant, step: ProvisionStep, phase: StepPhase) -> Result<()> {
        match &self.hook {
            Some(hook) => hook.on_step(tenant, step, phase),
            None => Ok(()),
        }
    }

    /// Runs the steps not yet done, recording each. Called with the tenant's lock held.
    async fn run_steps(&self, tenant: &Tenant, target: &Target) -> Result<ProvisionReport> {
        let global = &self.storage.global;
        let done = steps::done(global, tenant.id).await?;
        let mut report = ProvisionReport::default();
        for step in ProvisionStep::ALL {
            if done.contains(&step) {
                continue;
            }
            let started = Instant::now();
            let outcome = async {
                self.run_step(step, tenant, target, &mut report).await?;
                self.observe(tenant, step, StepPhase::Done)?;
                steps::record(global, tenant.id, step).await?;
                self.observe(tenant, step, StepPhase::Recorded)
            }
            .await;
            metrics::histogram!(
                "tenant_provision_step_seconds",
                "step" => step.as_str(),
                "isolation" => tenant.isolation.as_str()
            )
            .record(started.elapsed().as_secs_f64());
            if let Err(err) = outcome {
                metrics::counter!(
                    "tenant_provision_failures_total",
                    "step" => step.as_str(),
                    "isolation" => tenant.isolation.as_str()
                )
                .increment(1);
                tracing::warn!(tenant = %tenant.id, step = step.as_str(), error = %err, "provisioning step failed");
                // The step's own error matters more than a failure to record it.
                let change = Change::Failed(step, &error_text(&err));
                let _ = steps::update(global, tenant.id, change).await;
                return Err(err);
            }
            report.steps_run.push(step);
        }
        steps::update(global, tenant.id, Change::Succeeded).await?;
        Ok(report)
    }

    pub(super) async fn run_step(
        &self,
        step: ProvisionStep,
        tenant: &Tenant,
        target: &Target,
        report: &mut ProvisionReport,
    ) -> Result<()> {
        match step {
            ProvisionStep::Reserved => self.reserve(tenant, target).await,
            ProvisionStep::StorageCreated => {
                let credentials = &*self.credentials;
                match tenant.isolation {
                    Isolation::Database => {
                        let tpl =
                            database::create(&self.storage, credentials, tenant, target).await?;
                        if let Some(tpl) = tpl {
                            report.used_template = true;
                            let change = Change::UsedTemplate(&tpl);
                            steps::update(&self.storage.global, tenant.id, change).await?;
                        }
                        Ok(())
                    }
                    Isolation::Schema => schema::create(&self.storage, tenant, target).await,
                    Isolation::Shared => shared::create(&self.storage, target).await,
                }
            }
            ProvisionStep::Migrated => {
                migrate_tenant(&self.storage, tenant).await?;
                if tenant.isolation == Isolation::Shared {
                    shared::secure_migrated(&self.storage, target).await?;
                }
                Ok(())
            }
            ProvisionStep::Seeded => self.seed(tenant, target).await,
            ProvisionStep::Active => Ok(()),
        }
    }

    /// Claims the tenant's names: no other tenant of the registry may use the same database
    /// (database isolation) or the same schema of the same database (schema isolation).
    async fn reserve(&self, tenant: &Tenant, target: &Target) -> Result<()> {
        let clash: Option<uuid::Uuid> = sqlx::query_scalar(
            "SELECT id FROM tm_tenants WHERE id <> $1 AND server_id = $2 AND database_name = $3 \
               AND (isolation = 'database' OR $4 = 'database' \
                    OR (isolation = 'schema' AND $4 = 'schema' AND schema_name = $5)) \
             LIMIT 1",
        )
        .bind(tenant.id.as_uuid())
        .bind(target.server.as_str())
        .bind(target.database.as_str())
        .bind(tenant.isolation.as_str())
        .bind(target.schema.as_ref().map(|s| s.as_str()))
        .fetch_optional(&self.storage.global)
        .await
        .map_db(Entity::Tenant)?;
        match clash {
            Some(other) => Err(Error::conflict(
                Entity::Tenant,
                "placement",
                format!("tenant {other} already uses this placement"),
            )),
            None => Ok(()),
        }
    }

    async fn seed(&self, tenant: &Tenant, target: &Target) -> Result<()> {
        let Some(seeder) = &self.seeder else {
            return Ok(());
        };
        let mut conn = self
            .storage
            .connect(&target.server, &target.database)
            .await?;
        let seeded = async {
            let mut tx = conn.begin().await.map_db(Entity::Tenant)?;
            scope_of(&self.storage, target, tenant)?
                .enter(&mut tx, true)
                .await?;
            seeder.seed(tenant, &mut tx).await?;
            tx.commit().await.map_db(Entity::Tenant)
        }
        .await;
        pg::close(conn).await;
        seeded
    }
}

#[async_trait]
impl Provisioner for PostgresProvisioner {
    async fn provision(&self, tenant: &Tenant) -> Result<ProvisionReport> {
        self.check_supported(tenant.isolation)?;
        let target = self.storage.target(tenant)?;
        let started = Instant::now();
        let _slot = self.run_slot().await?;
        let lock = TenantLock::acquire(&self.storage.global, tenant.id).await?;
        let attempt = steps::attempt(&self.storage.global, tenant.id).await;
        let report = match attempt {
            Ok(()) => self.run_steps(tenant, &target).await,
            Err(e) => Err(e),
        };
        // Releasing explicitly returns the connection at once; on error the lock goes with
        // the rolled-back transaction anyway.
        let _ = lock.release().await;
        if report.is_ok() {
            metrics::histogram!(
                "tenant_provision_seconds",
                "isolation" => tenant.isolation.as_str()
            )
            .record(started.elapsed().as_secs_f64());
        }
        report
    }

    async fn deprovision(&self, tenant: &Tenant) -> Result<()> {
        let target = self.storage.target(tenant)?;
        let _slot = self.run_slot().await?;
        let lock = TenantLock::acquire(&self.storage.global, tenant.id).await?;
        let dropped = async {
            match tenant.isolation {
                Isolation::Database => database::drop(&self.storage, tenant, &target).await?,
                Isolation::Schema => schema::drop(&self.storage, tenant, &target).await?,
                Isolation::Shared => shared::drop(&self.storage, tenant, &target).await?,
            }
            steps::forget(&self.storage.global, tenant.id).await?;
            record::forget(&self.storage.global, tenant.id).await
        }
        .await;
        let _ = lock.release().await;
        dropped
    }

    async fn is_provisioned(&self, tenant: &Tenant) -> Result<bool> {
        let done = steps::done(&self.storage.global, tenant.id).await?;
        Ok(ProvisionStep::ALL.iter().all(|s| done.contains(s)))
    }

    fn capabilities(&self) -> ProvisionerCapabilities {
        let mut caps = ProvisionerCapabilities::ALL;
        caps.shared = self
            .storage
            .migrations
            .migrator(Isolation::Shared)
            .is_some();
        caps
    }
}
