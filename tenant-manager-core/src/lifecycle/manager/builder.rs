//! Builder of [`TenantManager`].

use std::fmt;
use std::sync::Arc;

use super::{Inner, ManagerConfig, TenantManager};
use crate::auth::{HasherConfig, PasswordHasher, PasswordPolicy, TokenService};
use crate::domain::{PlanBook, PlanCatalog};
use crate::error::{Error, Result};
use crate::lifecycle::moves::{MoveConfig, Moves};
use crate::lifecycle::ops::TenantOps;
use crate::placement::LeastLoaded;
use crate::traits::{
    Backup, EventBus, JobQueue, PlacementPolicy, PoolCloser, Provisioner, ProvisioningHook,
    QuotaEnforcer, TenantCache, TenantMover, TenantRegistry,
};

/// Builds a [`TenantManager`]. Registry, provisioner, quota enforcer and token service are
/// required; the password hasher defaults to OWASP argon2id parameters.
#[derive(Default)]
#[must_use]
pub struct TenantManagerBuilder {
    registry: Option<Arc<dyn TenantRegistry>>,
    provisioner: Option<Arc<dyn Provisioner>>,
    quota: Option<Arc<dyn QuotaEnforcer>>,
    cache: Option<Arc<dyn TenantCache>>,
    jobs: Option<Arc<dyn JobQueue>>,
    backup: Option<Arc<dyn Backup>>,
    pools: Option<Arc<dyn PoolCloser>>,
    events: Option<Arc<dyn EventBus>>,
    hooks: Vec<Arc<dyn ProvisioningHook>>,
    hasher: Option<PasswordHasher>,
    tokens: Option<TokenService>,
    policy: PasswordPolicy,
    plans: PlanBook,
    placement: Option<Arc<dyn PlacementPolicy>>,
    config: ManagerConfig,
    mover: Option<Arc<dyn TenantMover>>,
    move_config: MoveConfig,
}

impl fmt::Debug for TenantManagerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantManagerBuilder")
            .field("registry", &self.registry.is_some())
            .field("provisioner", &self.provisioner.is_some())
            .field("quota", &self.quota.is_some())
            .field("cache", &self.cache.is_some())
            .field("jobs", &self.jobs.is_some())
            .field("backup", &self.backup.is_some())
            .field("pools", &self.pools.is_some())
            .field("events", &self.events.is_some())
            .field("hooks", &self.hooks.len())
            .field("tokens", &self.tokens)
            .field("placement", &self.placement)
            .field("config", &self.config)
            .field("mover", &self.mover)
            .finish_non_exhaustive()
    }
}

impl TenantManagerBuilder {
    /// Sets the registry (required).
    pub fn with_registry(mut self, registry: Arc<dyn TenantRegistry>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Sets the provisioner (required).
    pub fn with_provisioner(mut self, provisioner: Arc<dyn Provisioner>) -> Self {
        self.provisioner = Some(provisioner);
        self
    }

    /// Sets the quota enforcer (required).
    pub fn with_quota(mut self, quota: Arc<dyn QuotaEnforcer>) -> Self {
        self.quota = Some(quota);
        self
    }

    /// Sets the tenant cache whose entries the manager invalidates on every change.
    pub fn with_cache(mut self, cache: Arc<dyn TenantCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Sets the job queue (required for async provisioning).
    pub fn with_jobs(mut self, jobs: Arc<dyn JobQueue>) -> Self {
        self.jobs = Some(jobs);
        self
    }

    /// Sets the backup adapter used by [`TenantManager::backup_all`].
    pub fn with_backup(mut self, backup: Arc<dyn Backup>) -> Self {
        self.backup = Some(backup);
        self
    }

    /// Sets what closes a tenant's pool on suspend and delete (a pool engine, as it is).
    pub fn with_pool_closer(mut self, pools: Arc<dyn PoolCloser>) -> Self {
        self.pools = Some(pools);
        self
    }

    /// Sets the bus on which the manager, and the workers it builds, publish a
    /// [`TenantEvent`](crate::domain::TenantEvent) for each life-cycle change: registered,
    /// provisioned, provisioning failed, suspended, resumed, deleted, purged, plan changed,
    /// backup completed or failed. Events are published after the change is in the registry;
    /// a failed publish is logged and counted (`tenant_events_publish_failures_total`) and
    /// never fails the change.
    pub fn with_events(mut self, events: Arc<dyn EventBus>) -> Self {
        self.events = Some(events);
        self
    }

    /// Adds a host's steps around provisioning (a veto before, a step of its own after),
    /// run after those added before, inline and in the workers this manager builds. See
    /// [`ProvisioningHook`] for their failure semantics.
    pub fn with_provisioning_hook(mut self, hook: Arc<dyn ProvisioningHook>) -> Self {
        self.hooks.push(hook);
        self
    }

    /// Sets the password hasher.
    pub fn with_hasher(mut self, hasher: PasswordHasher) -> Self {
        self.hasher = Some(hasher);
        self
    }

    /// Sets the token service (required).
    pub fn with_tokens(mut self, tokens: TokenService) -> Self {
        self.tokens = Some(tokens);
        self
    }

    /// Sets the password policy.
    pub fn with_password_policy(mut self, policy: PasswordPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets the plan catalog (fixed for the manager's life).
    pub fn with_plans(mut self, plans: PlanCatalog) -> Self {
        self.plans = PlanBook::new(plans);
        self
    }

    /// Shares a plan book: replacing its catalog changes the plans the manager applies, from
    /// the next call on.
    pub fn with_plan_book(mut self, plans: PlanBook) -> Self {
        self.plans = plans;
        self
    }

    /// Sets the placement policy of new tenants over the configuration's server list
    /// ([`ManagerConfig::servers`]); default [`LeastLoaded::by_tenants`].
    pub fn with_placement(mut self, policy: Arc<dyn PlacementPolicy>) -> Self {
        self.placement = Some(policy);
        self
    }

    /// Sets the configuration.
    pub fn with_config(mut self, config: ManagerConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets the mover of tenants between database servers
    /// ([`TenantManager::move_tenant`]), with how moves pause, drain and keep old storage.
    pub fn with_mover(mut self, mover: Arc<dyn TenantMover>, config: MoveConfig) -> Self {
        self.mover = Some(mover);
        self.move_config = config;
        self
    }

    /// Checks the parts and builds the manager.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming a missing part (`registry`, `provisioner`, `quota`,
    /// `tokens`), `job_queue` when async provisioning has no queue, `default_isolation` when
    /// the provisioner does not support it, or a bad configuration or password policy field;
    /// errors of [`PasswordHasher::new`] and [`TokenService::self_test`].
    pub fn build(self) -> Result<TenantManager> {
        let registry = required(self.registry, "registry")?;
        let provisioner = required(self.provisioner, "provisioner")?;
        let quota = required(self.quota, "quota")?;
        let tokens = required(self.tokens, "tokens")?;
        self.config.validate()?;
        self.policy.validate()?;
        if self.config.async_provisioning && self.jobs.is_none() {
            return Err(Error::invalid(
                "job_queue",
                "async provisioning needs a job queue",
            ));
        }
        if !provisioner
            .capabilities()
            .supports(self.config.default_isolation)
        {
            return Err(Error::invalid(
                "default_isolation",
                "is not supported by the provisioner",
            ));
        }
        let hasher = match self.hasher {
            Some(hasher) => hasher,
            None => PasswordHasher::new(HasherConfig::default())?,
        };
        tokens.self_test()?;
        Ok(TenantManager {
            inner: Arc::new(Inner {
                ops: TenantOps {
                    registry,
                    provisioner,
                    cache: self.cache,
                    pools: self.pools,
                    events: self.events,
                    hooks: self.hooks,
                    moves: self.mover.map(|mover| Moves {
                        mover,
                        config: self.move_config,
                    }),
                },
                quota,
                jobs: self.jobs,
                backup: self.backup,
                hasher,
                tokens,
                policy: self.policy,
                plans: self.plans,
                placement: self
                    .placement
                    .unwrap_or_else(|| Arc::new(LeastLoaded::by_tenants())),
                config: self.config,
            }),
            actor: crate::domain::Actor::System,
        })
    }
}

fn required<T>(part: Option<T>, name: &'static str) -> Result<T> {
    part.ok_or_else(|| Error::invalid(name, "is required"))
}
