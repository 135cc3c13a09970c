//! The seven traits a host application programs against. All are dyn-safe: hold them as
//! `Arc<dyn Trait>` and pick adapters at start-up.

mod backup;
mod cache;
mod jobs;
pub mod gcra;
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
pub use pool::{PoolManager, PoolStats, TenantConnection, TenantPoolStats};
pub use pool_closer::PoolCloser;
pub use provisioner::{ProvisionReport, ProvisionStep, Provisioner, ProvisionerCapabilities};
pub use quota::{QuotaEnforcer, RateDecision, RateKey, UsageDecision, UsageKind};
pub use registry::TenantRegistry;
