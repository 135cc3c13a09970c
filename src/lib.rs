#![doc = include_str!("../README.md")]
//! ## Facade
//!
//! This crate re-exports the crates of the toolkit:
//!
//! - [`core`] (always): domain types, traits, in-memory adapters, auth, pool engine.
//! - `postgres` (feature `postgres`): registry, provisioning, scoped connections, backups.
//! - `redis` (feature `redis`): quotas, tenant cache, job queue, locks.
//! - `tower` (feature `tower`, extractors with `axum`): the request-path layers.
//! - Feature `s3`: backup artifacts in an S3-compatible bucket
//!   (`backup_store::ObjectBackupStore::s3`, `backup_store::S3Config`).

pub use tenant_manager_core as core;
pub use tenant_manager_core::*;

#[cfg(feature = "postgres")]
pub use tenant_manager_postgres as postgres;

#[cfg(feature = "redis")]
pub use tenant_manager_redis as redis;

#[cfg(feature = "tower")]
pub use tenant_manager_tower as tower;
