//! `PostgresProvisioner`: creates and drops tenants' storage, one isolation mode per tenant.
//!
//! Provisioning is a recorded sequence of idempotent steps ([`ProvisionStep`]): `reserved`
//! (names validated and claimed), `storage_created` (role, database or schema, grants),
//! `migrated` (the host's tenant migrations), `seeded` (a [`TenantSeeder`]), `active`. Steps are
//! recorded in the global database as they finish, so a run after a crash resumes at the first
//! step not recorded, redoing at most the one in flight. A per-tenant advisory lock on the
//! global database keeps two processes from provisioning one tenant at once.
//!
//! | isolation | storage | who owns it |
//! |---|---|---|
//! | `Database` | `CREATE DATABASE <prefix>_t_<slug> OWNER <prefix>_t_<slug> [TEMPLATE ...]`, `CONNECT` revoked from `PUBLIC` | the tenant's login role |
//! | `Schema` | `CREATE SCHEMA <prefix>_t_<slug> AUTHORIZATION <prefix>_t_<slug>` in a shared database marked as this deployment's | the tenant's role (`NOLOGIN`, no `TEMPORARY`) |
//! | `Shared` | rows tagged `tenant_id` in shared tables with forced row-level security | the shared owner role |
//!
//! Pools shared by schema and shared tenants log in as the app login
//! ([`crate::app_login`]), which provisioning grants each schema tenant's tables and the shared
//! tables directly (never a membership, never ownership), behind the database's
//! [`wall`](crate::wall), installed with the first such tenant.
//! [`PostgresProvisioner::ensure_app_login`] sets its password; [`crate::WallAdmin::install`]
//! brings tenants provisioned before the wall behind it.

pub(crate) mod admin;
pub(crate) mod app_grants;
mod claim;
pub(crate) mod database;
mod hook;
pub(crate) mod lock;
mod schema;
pub(crate) mod scram;
mod seed;
mod shared;
mod steps;
pub(crate) mod template;

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use sqlx::Connection;
use tenant_manager_core::{
    Entity, Error, Isolation, ProvisionReport, ProvisionStep, Provisioner, ProvisionerCapabilities,
    Result, ServerId, Tenant, TenantId,
};
use tokio::sync::{Semaphore, SemaphorePermit};

pub use app_grants::AppLoginReport;
pub use claim::SharedClaimReport;
pub use hook::{StepHook, StepPhase};
pub(crate) use scram::verifier as scram_verifier;
pub use seed::TenantSeeder;
pub use steps::ProvisionStatus;

use crate::app_login::AppLogin;
use crate::credentials::TenantCredentials;
use crate::error::SqlxResultExt;
use crate::migrate::record::error_text;
use crate::migrate::tenant::{migrate_tenant, scope_of};
use crate::storage::{Target, TenantStorage};
use lock::TenantLock;

/// [`Provisioner`] for Postgres: database, schema and shared (row-level) isolation, chosen per
/// tenant by its [`Isolation`], on any server of the [`crate::ServerMap`].
#[derive(Clone)]
pub struct PostgresProvisioner {
    storage: TenantStorage,
    credentials: Arc<dyn TenantCredentials>,
    seeder: Option<Arc<dyn TenantSeeder>>,
    hook: Option<Arc<dyn StepHook>>,
    runs: Arc<Semaphore>,
}

impl fmt::Debug for PostgresProvisioner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresProvisioner")
            .field("storage", &self.storage)
            .field("credentials", &self.credentials)
            .field("seeder", &self.seeder)
            .field("hook", &self.hook)
            .field("free_run_slots", &self.runs.available_permits())
            .finish()
    }
}

impl PostgresProvisioner {
    /// A provisioner over `storage`, setting tenant role passwords from `credentials`.
    ///
    /// At most half as many tenants as the global pool has connections are provisioned or
    /// deprovisioned at once (at least one): each run holds one global connection for the
    /// tenant's lock and takes a second one at a time to record its steps, so runs beyond that
    /// would wait for each other's connections until the pool's acquire timeout. Further runs
    /// wait for a slot. A global pool needs at least two connections.
    pub fn new(storage: TenantStorage, credentials: Arc<dyn TenantCredentials>) -> Self {
        let slots = (storage.global.options().get_max_connections() / 2).max(1);
        Self {
            storage,
            credentials,
            seeder: None,
            hook: None,
            runs: Arc::new(Semaphore::new(usize::try_from(slots).unwrap_or(1))),
        }
    }

    /// Sets how many tenants may be provisioned or deprovisioned at once (see
    /// [`new`](Self::new) for the default and why it is bounded).
    #[must_use]
    pub fn with_max_concurrent_runs(mut self, runs: NonZeroUsize) -> Self {
        self.runs = Arc::new(Semaphore::new(runs.get()));
        self
    }

    /// Writes seed data in the `seeded` step.
    #[must_use]
    pub fn with_seeder(mut self, seeder: Arc<dyn TenantSeeder>) -> Self {
        self.seeder = Some(seeder);
        self
    }

    /// Observes every step (metrics, tracing, fault injection).
    #[must_use]
    pub fn with_step_hook(mut self, hook: Arc<dyn StepHook>) -> Self {
        self.hook = Some(hook);
        self
    }

    /// The storage description this provisioner works on.
    pub fn storage(&self) -> &TenantStorage {
        &self.storage
    }

    /// What is recorded about a tenant's provisioning: steps done, attempts, last failure.
    ///
    /// # Errors
    /// `Unavailable` when the global database cannot be reached.
    pub async fn status(&self, tenant: TenantId) -> Result<ProvisionStatus> {
        steps::status(&self.storage.global, tenant).await
    }

    /// Builds the template database of the current migration set on `server` now, instead of
    /// on the first database-isolated tenant. Returns its name.
    ///
    /// # Errors
    /// `InvalidInput` for an unknown server; `Unavailable` when it cannot be reached;
    /// `Internal` when a migration fails.
    pub async fn prepare_template(&self, server: &ServerId) -> Result<String> {
        template::ensure_template(&self.storage, server)
            .await
            .map(|t| t.as_str().to_owned())
    }

    /// Drops template databases on `server`: all of them, or all but the current migration
    /// set's (`keep_current`). Returns the names dropped.
    ///
    /// # Errors
    /// As [`PostgresProvisioner::prepare_template`].
    pub async fn drop_templates(
        &self,
        server: &ServerId,
        keep_current: bool,
    ) -> Result<Vec<String>> {
        template::drop_templates(&self.storage, server, keep_current).await
    }

    /// Creates the app login on every server of the map, or brings it up to date: `LOGIN` with
    /// `login`'s password (sent as a SCRAM verifier), `NOSUPERUSER NOCREATEDB NOCREATEROLE
    /// NOBYPASSRLS NOINHERIT NOREPLICATION`, marked as tenant-manager's. Then grants it what the
    /// schema and shared tenants provisioned so far need (their roles, `CONNECT`, the shared
    /// tables), so tenants provisioned before the app login existed work through it too.
    /// Idempotent; call it at start-up, before the pools connect.
    ///
    /// # Errors
    /// - `InvalidInput` on `app_login` when `login` is not the storage's
    ///   [`StorageConfig::app_login`](crate::StorageConfig::app_login), or it has none.
    /// - `Conflict` on `app_login` when a role of that name exists and tenant-manager did not
    ///   create it: it is left untouched.
    /// - `Unavailable` when a server or the global database cannot be reached.
    pub async fn ensure_app_login(&self, login: &AppLogin) -> Result<AppLoginReport> {
        app_grants::ensure(&self.storage, login).await
    }

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
                let _ = steps::failed(global, tenant.id, step, &error_text(&err)).await;
                return Err(err);
            }
            report.steps_run.push(step);
        }
        steps::succeeded(global, tenant.id).await?;
        Ok(report)
    }

    async fn run_step(
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
                            steps::used_template(&self.storage.global, tenant.id, &tpl).await?;
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
        admin::close(conn).await;
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
            crate::migrate::record::forget(&self.storage.global, tenant.id).await
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
