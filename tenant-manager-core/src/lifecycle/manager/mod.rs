//! `TenantManager`: registration, login and the tenant life cycle over the traits.
//!
//! ```no_run
//! # async fn example(
//! #     registry: std::sync::Arc<dyn tenant_manager_core::TenantRegistry>,
//! #     provisioner: std::sync::Arc<dyn tenant_manager_core::Provisioner>,
//! #     quota: std::sync::Arc<dyn tenant_manager_core::QuotaEnforcer>,
//! # ) -> tenant_manager_core::Result<()> {
//! use tenant_manager_core::auth::{JwtConfig, TokenService};
//! use tenant_manager_core::manager::{Registration, TenantManager};
//!
//! let tokens = TokenService::new(JwtConfig::hs256("a secret of at least thirty-two bytes!!"))?;
//! let manager = TenantManager::builder()
//!     .with_registry(registry)
//!     .with_provisioner(provisioner)
//!     .with_quota(quota)
//!     .with_tokens(tokens)
//!     .build()?;
//! let registered = manager
//!     .register_organization(Registration::new("Acme", "owner@acme.test", "Test123!"))
//!     .await?;
//! let login = manager.login("owner@acme.test", "Test123!").await?;
//! assert_eq!(login.tenant_id, registered.tenant.id);
//! # Ok(()) }
//! ```

mod backup;
mod builder;
mod config;
mod login;
mod members;
mod moves;
mod placement;
mod plans;
mod prune;
mod reclaim;
mod registration;
mod restore;
mod schedule;
mod signup;
mod transitions;
mod verify;

use std::fmt;
use std::sync::Arc;

pub use crate::lifecycle::move_config::MoveConfig;
/// Re-exported from [`traits`](crate::traits): what the manager needs of a pool engine.
pub use crate::traits::PoolCloser;
pub use backup::{BackupProgress, BackupSummary};
pub use builder::TenantManagerBuilder;
pub use config::ManagerConfig;
pub use login::{LoginOutcome, LoginResult, MAX_LOGIN_MEMBERSHIPS, TenantChoice};
pub use members::Invited;
pub use prune::PruneOutcome;
pub use restore::{RestoreAsNew, RestoredAsNew};
pub use schedule::DueBackup;
pub use signup::{Registered, Registration};
pub use verify::{
    BackupVerification, MAX_VERIFY_SAMPLE, TableMismatch, VerifyReport, compare_rows,
};

use crate::auth::{PasswordHasher, PasswordPolicy, TokenService};
use crate::domain::{
    Actor, EventKind, Page, PlanBook, QuotaPolicy, Tenant, TenantId, TenantQuery, TenantUpdate,
};
use crate::error::Result;
use crate::lifecycle::ops::TenantOps;
use crate::lifecycle::worker::{ProvisioningWorker, WorkerConfig};
use crate::traits::{Backup, JobQueue, PlacementPolicy, QuotaEnforcer, TenantRegistry};

/// Registers organisations, logs users in, and drives tenants through their life cycle.
///
/// Composes the traits (registry, provisioner, quota enforcer, and optionally a cache, a job
/// queue, a backup adapter and a pool closer) with the password hasher and the token
/// service. Build one with [`TenantManager::builder`]; cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct TenantManager {
    inner: Arc<Inner>,
    /// Who the events of this handle's calls name (see [`TenantManager::acting_as`]).
    actor: Actor,
}

struct Inner {
    ops: TenantOps,
    quota: Arc<dyn QuotaEnforcer>,
    jobs: Option<Arc<dyn JobQueue>>,
    backup: Option<Arc<dyn Backup>>,
    hasher: PasswordHasher,
    tokens: TokenService,
    policy: PasswordPolicy,
    plans: PlanBook,
    placement: Arc<dyn PlacementPolicy>,
    config: ManagerConfig,
}

impl fmt::Debug for TenantManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("TenantManager")
            .field("registry", &inner.ops.registry)
            .field("provisioner", &inner.ops.provisioner)
            .field("quota", &inner.quota)
            .field("cache", &inner.ops.cache)
            .field("jobs", &inner.jobs)
            .field("backup", &inner.backup)
            .field("pools", &inner.ops.pools)
            .field("events", &inner.ops.events)
            .field("tokens", &inner.tokens)
            .field("placement", &inner.placement)
            .field("config", &inner.config)
            .field("actor", &self.actor)
            .finish_non_exhaustive()
    }
}

impl TenantManager {
    /// A builder; registry, provisioner, quota enforcer and token service are required.
    pub fn builder() -> TenantManagerBuilder {
        TenantManagerBuilder::default()
    }

    /// A handle on the same manager whose calls publish their events as caused by `actor`
    /// (an operator through an admin API: [`Actor::Admin`]). The handle [`build`] returns
    /// acts as [`Actor::System`]; registration always names the new owner.
    ///
    /// [`build`]: TenantManagerBuilder::build
    #[must_use]
    pub fn acting_as(&self, actor: Actor) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            actor,
        }
    }

    /// Who the events of this handle's calls name.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// The tenant with this id, from the registry (the system of record).
    ///
    /// # Errors
    /// `NotFound` for an unknown id; `Unavailable` when the registry cannot be reached.
    pub async fn get(&self, id: TenantId) -> Result<Tenant> {
        self.inner.ops.registry.get_tenant(id).await
    }

    /// One page of tenants, ordered by id; pass the page's `next` as `after` for the next.
    ///
    /// # Errors
    /// `InvalidInput` on `limit` (1 to 500); `Unavailable` when the registry cannot be reached.
    pub async fn list(&self, query: &TenantQuery) -> Result<Page<Tenant>> {
        query.validate()?;
        self.inner.ops.registry.list_tenants(query).await
    }

    /// Sets (or, with `None`, clears) a tenant's quota override.
    ///
    /// # Errors
    /// `InvalidInput` naming the out-of-range quota field; `NotFound`; `Conflict` on
    /// `status` for a deleting or deleted tenant; `Unavailable`.
    pub async fn update_quota(&self, id: TenantId, quota: Option<QuotaPolicy>) -> Result<Tenant> {
        if let Some(policy) = &quota {
            policy.validate()?;
        }
        let update = TenantUpdate::default().with_quota(quota.clone());
        let tenant = self.update_live(id, update, "quota").await?;
        let details = serde_json::json!({ "plan": tenant.plan, "quota": quota });
        self.inner
            .ops
            .emit(
                EventKind::PlanChanged,
                &tenant,
                self.actor.clone(),
                Some(details),
            )
            .await;
        Ok(tenant)
    }

    /// The quota that applies to a tenant: its override, else its plan's policy.
    pub fn effective_quota(&self, tenant: &Tenant) -> QuotaPolicy {
        tenant
            .quota
            .clone()
            .unwrap_or_else(|| self.inner.plans.policy(&tenant.plan))
    }

    /// A provisioning worker over this manager's queue, registry, provisioner, cache and pool
    /// closer.
    ///
    /// # Errors
    /// `InvalidInput` on `job_queue` when no queue is configured, or on a bad worker config.
    pub fn worker(&self, config: WorkerConfig) -> Result<ProvisioningWorker> {
        let jobs = self.job_queue()?;
        ProvisioningWorker::from_ops(self.inner.ops.clone(), jobs, config)
    }

    /// The registry.
    pub fn registry(&self) -> &Arc<dyn TenantRegistry> {
        &self.inner.ops.registry
    }

    /// The quota enforcer.
    pub fn quota(&self) -> &Arc<dyn QuotaEnforcer> {
        &self.inner.quota
    }

    /// The token service.
    pub fn tokens(&self) -> &TokenService {
        &self.inner.tokens
    }

    /// The password hasher.
    pub fn hasher(&self) -> &PasswordHasher {
        &self.inner.hasher
    }

    /// The plan catalog, shared with whoever holds a clone of it (replace its catalog to
    /// change the plans this manager applies).
    pub fn plans(&self) -> &PlanBook {
        &self.inner.plans
    }

    /// The configuration.
    pub fn config(&self) -> &ManagerConfig {
        &self.inner.config
    }

    fn job_queue(&self) -> Result<Arc<dyn JobQueue>> {
        self.inner
            .jobs
            .clone()
            .ok_or_else(|| crate::error::Error::invalid("job_queue", "no job queue is configured"))
    }
}
