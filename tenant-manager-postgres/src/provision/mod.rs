//! `PostgresProvisioner`: creates and drops tenants' storage, one isolation mode per tenant.
//!
//! Provisioning is a recorded sequence of idempotent steps ([`ProvisionStep`](tenant_manager_core::ProvisionStep)): `reserved`
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

mod app_grants;
mod claim;
pub(crate) mod database;
mod destination;
mod hook;
mod run;
mod schema;
mod seed;
mod shared;
mod steps;
mod template;

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::Arc;

use tenant_manager_core::{Result, ServerId, TenantId};
use tokio::sync::Semaphore;

pub use app_grants::AppLoginReport;
pub use claim::SharedClaimReport;
pub use hook::{StepHook, StepPhase};
pub use seed::TenantSeeder;
pub use steps::ProvisionStatus;

use crate::app_login::AppLogin;
use crate::credentials::TenantCredentials;
use crate::storage::TenantStorage;

/// [`Provisioner`](tenant_manager_core::Provisioner) for Postgres: database, schema and shared (row-level) isolation, chosen per
/// tenant by its [`Isolation`](tenant_manager_core::Isolation), on any server of the [`crate::ServerMap`].
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
}
