//! The seven traits a host application programs against, plus [`PlacementPolicy`] (which
//! database server a new tenant goes to), [`PoolCloser`] (the one method
//! of a pool engine the tenant life cycle needs) and [`gcra`] (the rate-limit arithmetic every
//! quota enforcer shares, so they all answer alike). All traits are dyn-safe: hold them as
//! `Arc<dyn Trait>` and pick adapters at start-up.

mod backup;
mod cache;
pub mod gcra;
mod jobs;
mod placement;
mod pool;
mod pool_closer;
mod provisioner;
mod quota;
mod registry;

pub use backup::{Backup, BackupRecord, BackupStore, StoredObject, validate_store_key};
pub use cache::{CacheEpoch, CacheKey, CacheLookup, CacheStats, TenantCache};
pub use jobs::{
    Job, JobQueue, NackOutcome, NewJob, QueueStats, validate_consumer, validate_extension,
};
pub use placement::{PlacementPolicy, PlacementRequest, ServerLoad, ServerSpec, eligible_servers};
pub use pool::{PoolManager, PoolStats, TenantConnection, TenantPoolStats};
pub use pool_closer::PoolCloser;
pub use provisioner::{ProvisionReport, ProvisionStep, Provisioner, ProvisionerCapabilities};
pub use quota::{QuotaEnforcer, RateDecision, RateKey, UsageDecision, UsageKind};
pub use registry::TenantRegistry;
