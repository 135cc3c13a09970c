//! # tenant-manager-core
//!
//! The domain types, traits and engines of tenant-manager, a toolkit that gives a Rust SaaS
//! backend real multitenancy: a registry of tenants, provisioning of their isolated storage,
//! a pool manager that keeps thousands of tenants inside a fixed connection budget, quotas and
//! rate limits, backups, a tenant cache and a job queue.
//!
//! - [`domain`]: `Tenant`, `TenantSlug`, `TenantStatus` (with the one transition function),
//!   `Isolation`, `Placement`, plans and quotas, users.
//! - [`traits`]: `TenantRegistry`, `Provisioner`, `PoolManager`, `QuotaEnforcer`, `Backup` +
//!   `BackupStore`, `TenantCache`, `JobQueue`. All dyn-safe; hold them as `Arc<dyn Trait>`.
//! - [`Error`]: one error type whose variants say what a caller can act on.
//!
//! ## Implementing a backend
//! Implement the trait with `#[async_trait]`, map driver errors in one `From` impl (a unique
//! violation becomes [`Error::Conflict`], a refused connection [`Error::Unavailable`]), then
//! run the trait's conformance suite from the `testing` feature against the real backend.

pub mod auth;
pub mod domain;
pub mod error;
pub mod fs_store;
pub mod gcra;
pub mod jobs_kinds;
pub mod lookup;
pub mod manager;
pub mod memory;
pub mod pool;
pub mod traits;
pub mod worker;

pub use domain::*;
pub use error::{BoxError, Entity, Error, Result};
pub use traits::*;

/// Re-exported so adapters and hosts use the same `async_trait`.
pub use async_trait::async_trait;

#[cfg(feature = "testing")]
pub mod testing;
