//! The traits a host application programs against, plus [`PlacementPolicy`] (which database
//! server a new tenant goes to), [`PoolCloser`] (the one method of a pool engine the tenant
//! life cycle needs), [`ProvisioningHook`] (a host's steps around provisioning) and [`gcra`]
//! (the rate-limit arithmetic every
//! quota enforcer shares, so they all answer alike). All traits are dyn-safe: hold them as
//! `Arc<dyn Trait>` and pick adapters at start-up.

mod backup;
mod cache;
mod events;
pub mod gcra;
mod hooks;
mod jobs;
mod leases;
mod meter;
mod mover;
mod placement;
mod plans;
mod pool;
mod pool_closer;
mod provisioner;
mod quota;
mod refresh;
mod registry;
mod schedules;

pub use backup::{Backup, BackupRecord, BackupStore, StoredObject, TableRows, validate_store_key};
pub use cache::{CacheEpoch, CacheKey, CacheLookup, CacheStats, TenantCache};
pub use events::{EventBus, EventStream};
pub use hooks::ProvisioningHook;
pub use jobs::{
    Job, JobQueue, MAX_JOB_DELAY, NackOutcome, NewJob, QueueStats, validate_consumer,
    validate_delay, validate_extension,
};
pub use leases::{ConnectionLeases, LeaseGrant, MAX_LEASE_TTL, ttl_millis, validate_lease};
pub use meter::StorageMeter;
pub use mover::TenantMover;
pub use placement::{PlacementPolicy, PlacementRequest, ServerLoad, ServerSpec, eligible_servers};
pub use plans::PlanStore;
pub use pool::{PoolManager, PoolStats, TenantConnection, TenantPoolStats};
pub use pool_closer::PoolCloser;
pub use provisioner::{ProvisionReport, ProvisionStep, Provisioner, ProvisionerCapabilities};
pub use quota::{QuotaEnforcer, RateDecision, RateKey, UsageDecision, UsageKind};
pub use refresh::{NewRefreshToken, RefreshToken, RefreshTokenStore, Successor, refresh_refused};
pub use registry::TenantRegistry;
pub use schedules::{
    MAX_SCHEDULE_INTERVAL, MIN_SCHEDULE_INTERVAL, Schedule, ScheduleStore, ScheduleTick,
};
