// The README's embedding uses the tower layers through this facade: it is the crate's front
// page (and a doctest) where they are compiled in.
#![cfg_attr(feature = "axum", doc = include_str!("../README.md"))]
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
//!
//! ## Registration and login, in memory
//!
//! Registration, login and the tenant life cycle over the in-memory adapters (swap in
//! `PostgresRegistry`, `PostgresProvisioner`, `RedisQuotaEnforcer` and friends for production;
//! every adapter passes the same conformance suites):
//!
//! ```rust
//! use std::sync::Arc;
//! use tenant_manager::auth::{JwtConfig, TokenService};
//! use tenant_manager::manager::{Registration, TenantManager};
//! use tenant_manager::memory::{InMemoryProvisioner, InMemoryQuotaEnforcer, InMemoryRegistry, InMemoryTenantData};
//! use tenant_manager::TenantStatus;
//!
//! #[tokio::main]
//! async fn main() -> tenant_manager::Result<()> {
//!     let manager = TenantManager::builder()
//!         .with_registry(Arc::new(InMemoryRegistry::new()))
//!         .with_provisioner(Arc::new(InMemoryProvisioner::new(Arc::new(InMemoryTenantData::new()))))
//!         .with_quota(Arc::new(InMemoryQuotaEnforcer::default()))
//!         .with_tokens(TokenService::new(JwtConfig::hs256("replace with 32+ random bytes!!!"))?)
//!         .build()?;
//!     let acme = manager
//!         .register_organization(Registration::new("Acme", "owner@acme.test", "Test123!"))
//!         .await?;
//!     assert_eq!(acme.tenant.status, TenantStatus::Active);
//!     let session = manager.login("owner@acme.test", "Test123!").await?;
//!     let claims = manager.tokens().verify(session.token.access_token.expose())?;
//!     assert_eq!(claims.tid, acme.tenant.id);
//!     Ok(())
//! }
//! ```

pub use tenant_manager_core as core;
pub use tenant_manager_core::*;

#[cfg(feature = "postgres")]
pub use tenant_manager_postgres as postgres;

#[cfg(feature = "redis")]
pub use tenant_manager_redis as redis;

#[cfg(feature = "tower")]
pub use tenant_manager_tower as tower;
