//! In-memory adapters: the embedded default of the reference server and fast, real
//! implementations for hosts' tests. They obey the same conformance suites as the
//! Postgres and Redis adapters.

mod backup;
mod cache;
mod events;
mod jobs;
mod leases;
mod plans;
mod provisioner;
mod quota;
mod refresh;
mod registry;
mod schedules;
mod tenant_data;

/// What the conformance suites need of these adapters beyond their traits (feature `testing`).
pub use backup::InMemoryBackup;
pub use cache::{InMemoryCacheConfig, InMemoryTenantCache};
pub use events::{DEFAULT_EVENT_BUFFER, InMemoryEventBus};
pub use jobs::{InMemoryJobQueue, InMemoryJobQueueConfig, MAX_JOB_ERROR_LEN};
pub use leases::InMemoryConnectionLeases;
pub use plans::InMemoryPlanStore;
pub use provisioner::InMemoryProvisioner;
pub use quota::{InMemoryQuotaConfig, InMemoryQuotaEnforcer};
pub use refresh::InMemoryRefreshTokens;
pub use registry::InMemoryRegistry;
pub use schedules::InMemorySchedules;
pub use tenant_data::{InMemoryTenantData, TenantRecord};
