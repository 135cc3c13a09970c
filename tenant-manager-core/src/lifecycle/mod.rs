//! The tenant life cycle: the [`manager`] (registration, login, suspend, resume, delete,
//! quotas, backups) and the provisioning [`worker`] (queued provisioning and deprovisioning
//! jobs), both over one shared operations module: the status transitions that also drop cached
//! copies and close pools, provisioning, deprovisioning and marking failures.
//!
//! The manager builds workers over its own operations; the worker knows nothing of the
//! manager. The job kinds the manager queues and the worker runs are in [`jobs_kinds`].

mod events;
pub mod jobs_kinds;
pub mod manager;
pub(crate) mod move_config;
pub(crate) mod moves;
mod ops;
pub mod quota_events;
pub mod retention;
pub mod worker;

/// Checks of the provisioning worker that the adapters' tests run on their real queues
/// (feature `testing`).
#[cfg(feature = "testing")]
pub mod testing;
