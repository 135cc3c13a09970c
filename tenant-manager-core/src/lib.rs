//! # tenant-manager-core
//!
//! The domain types, traits and engines of tenant-manager, a toolkit that gives a Rust SaaS
//! backend real multitenancy: a registry of tenants, provisioning of their isolated storage,
//! a pool manager that keeps thousands of tenants inside a fixed connection budget, quotas and
//! rate limits, backups, a tenant cache and a job queue.
//!
//! This crate depends on no database driver. The Postgres and Redis adapters live in
//! `tenant-manager-postgres` and `tenant-manager-redis`, the tower layers and axum extractors
//! in `tenant-manager-tower`; the `tenant-manager` facade re-exports all of them. The
//! in-memory adapters here are products, not test doubles: they are embedded mode's backends
//! and obey the same conformance suites as the others.
//!
//! ## The floor and the rooms
//!
//! The contract is the ground floor: [`domain`], [`error`], [`traits`] and the conformance
//! suites of `testing`. It imports nothing else of this crate, so an adapter crate that
//! programs against it needs nothing more. The engines stand on it, each in a room named after
//! it; a room uses the floor and rooms below it, never one that uses it back.
//!
//! | module | what it holds |
//! |---|---|
//! | [`domain`] | [`Tenant`], [`TenantSlug`], [`TenantStatus`] and its one transition function, [`Isolation`], [`Placement`], plans and quotas, users, [`Secret`] |
//! | [`error`] | [`Error`], the one error type, whose variants say what a caller can act on |
//! | [`traits`] | the backend traits: [`TenantRegistry`], [`Provisioner`], [`PoolManager`] (and [`PoolCloser`]), [`QuotaEnforcer`] (and the [`gcra`] arithmetic every enforcer shares), [`Backup`] + [`BackupStore`], [`TenantCache`], [`JobQueue`], [`EventBus`] |
//! | `testing` | (feature `testing`) one conformance suite per trait, the macros that run it, shared helpers and a fault-injecting provisioner |
//! | [`pool`] | [`TenantPools`](pool::TenantPools): the pool engine over `bb8`, caps, eviction and affinity |
//! | [`auth`] | argon2id password hashing off the runtime, the password policy, JWT access tokens |
//! | [`lookup`] | [`TenantLookup`](lookup::TenantLookup): the hot-path tenant lookup, a registry behind a cache |
//! | [`memory`] | in-memory adapters of every trait but the pool manager |
//! | [`lifecycle`] | [`TenantManager`](manager::TenantManager) and [`ProvisioningWorker`](worker::ProvisioningWorker) over one shared operations module, and the [`jobs_kinds`] between them |
//! | [`webhook`] | signing and verifying webhook deliveries of tenant events (`X-TM-Signature`) |
//! | [`host_jobs`] | [`HostJobs`](host_jobs::HostJobs) and [`HostJobWorker`](host_jobs::HostJobWorker): the host's own job kinds, each job run inside its tenant's context, held while the tenant is suspended, tenants served in turn |
//! | [`backup_store`] | [`ObjectBackupStore`](backup_store::ObjectBackupStore): backup artifacts in a local directory, memory or (feature `s3`) an S3 bucket, over `object_store` |
//! | [`topk`] | [`TopTenants`](topk::TopTenants): requests, errors and latencies of the K busiest tenants, a sharded, decaying Space-Saving sketch |
//!
//! [`manager`], [`worker`] and [`jobs_kinds`] are also reachable from the crate root, as
//! before the life cycle had a room of its own.
//!
//! ## Usage
//!
//! Embedded mode, everything in memory: register an organisation, then do what the tower
//! layers do on each request, resolving the tenant through the cache and checking its rate
//! limit. A production host builds the same manager over `PostgresRegistry`,
//! `PostgresProvisioner`, `RedisQuotaEnforcer` and `RedisTenantCache`, each as an
//! `Arc<dyn Trait>`.
//!
//! ```
//! use std::sync::Arc;
//!
//! use tenant_manager_core::auth::{JwtConfig, TokenService};
//! use tenant_manager_core::lookup::TenantLookup;
//! use tenant_manager_core::manager::{Registration, TenantManager};
//! use tenant_manager_core::memory::{
//!     InMemoryProvisioner, InMemoryQuotaEnforcer, InMemoryRegistry, InMemoryTenantCache,
//!     InMemoryTenantData,
//! };
//! use tenant_manager_core::{
//!     CacheKey, QuotaEnforcer, RateKey, TenantCache, TenantRegistry, TenantStatus,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> tenant_manager_core::Result<()> {
//! let registry: Arc<dyn TenantRegistry> = Arc::new(InMemoryRegistry::new());
//! let cache: Arc<dyn TenantCache> = Arc::new(InMemoryTenantCache::default());
//! let quota: Arc<dyn QuotaEnforcer> = Arc::new(InMemoryQuotaEnforcer::default());
//! let data = Arc::new(InMemoryTenantData::new());
//! let manager = TenantManager::builder()
//!     .with_registry(Arc::clone(&registry))
//!     .with_provisioner(Arc::new(InMemoryProvisioner::new(data)))
//!     .with_quota(Arc::clone(&quota))
//!     .with_cache(Arc::clone(&cache))
//!     .with_tokens(TokenService::new(JwtConfig::hs256("replace with 32+ random bytes!!!"))?)
//!     .build()?;
//!
//! // Sign-up: tenant and owner created together, storage provisioned, a token issued.
//! let acme = manager
//!     .register_organization(Registration::new("Acme", "owner@acme.test", "Test123!"))
//!     .await?;
//! assert_eq!(acme.tenant.status, TenantStatus::Active);
//!
//! // Each request: resolve the tenant (cache first), then check its rate limit.
//! let lookup = TenantLookup::new(registry, cache);
//! let tenant = lookup.get(&CacheKey::Slug(acme.tenant.slug.clone())).await?;
//! let Some(tenant) = tenant else {
//!     return Err(tenant_manager_core::Error::internal("acme is registered"));
//! };
//! let rate = manager.effective_quota(&tenant).rate;
//! let decision = quota.check_rate(&RateKey::tenant(tenant.id), &rate, 1).await?;
//! assert!(decision.allowed);
//! # Ok(())
//! # }
//! ```
//!
//! ## Implementing a backend
//!
//! 1. Implement the trait with [`#[async_trait]`](macro@async_trait) on a type that is `Debug + Send + Sync`, so a
//!    host can hold it as `Arc<dyn Trait>`. Each trait's "Contract" section lists what every
//!    implementation guarantees, and its "Errors" section which [`Error`] variant each failure
//!    becomes.
//! 2. Validate inputs with the domain's own checks ([`NewTenant::validate`],
//!    [`TenantUpdate::validate`], [`TenantQuery::validate`], [`validate_store_key`], ...) and
//!    decide status changes with [`TenantStatus::can_transition_to`] only.
//! 3. Map driver errors in one place: a unique violation becomes [`Error::Conflict`] naming the
//!    field, a refused connection [`Error::Unavailable`] with the driver error as its source
//!    (never flattened to a string), anything else [`Error::Internal`].
//! 4. Run the trait's conformance suite from feature `testing` against the real backend, with
//!    one fresh database, schema or key prefix per test:
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use tenant_manager_core::TenantRegistry;
//! use tenant_manager_core::memory::InMemoryRegistry;
//! use tenant_manager_core::testing::Fixture;
//!
//! // In the adapter's tests: build the adapter under test (here the in-memory one), keeping
//! // whatever must outlive it (a test database) as the fixture's guard.
//! async fn registry() -> Fixture<dyn TenantRegistry> {
//!     Fixture::new(Arc::new(InMemoryRegistry::new()))
//! }
//!
//! tenant_manager_core::registry_conformance!(registry);
//! # fn main() {}
//! ```
//!
//! Cases a backend cannot support are declared, not skipped: a provisioner says which
//! isolations it supports ([`ProvisionerCapabilities`]), a cache or queue suite takes the
//! settings it runs with through `Fixture::with_caps`.

// The floor: the contract.
pub mod domain;
pub mod error;
pub mod traits;

#[cfg(feature = "testing")]
pub mod testing;

// The rooms: the engines standing on it (blank lines keep this order, the table's).
pub mod pool;

pub mod auth;

pub mod lookup;

pub mod memory;

pub mod placement;

pub mod lifecycle;

pub mod host_jobs;

pub mod backup_store;

pub mod topk;
pub mod webhook;

pub use domain::*;
pub use error::{BoxError, Entity, Error, Result};
pub use traits::*;

/// The life cycle's manager, worker and job kinds at their paths from the crate root.
pub use lifecycle::{jobs_kinds, manager, quota_events, worker};

/// Re-exported so adapters and hosts use the same `async_trait`.
pub use async_trait::async_trait;
