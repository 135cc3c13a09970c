//! The pool engine: thousands of tenants inside a fixed connection budget.
//!
//! [`TenantPools`] implements [`PoolManager`](crate::PoolManager) over any `bb8` connection
//! manager. A backend plugs in through a [`TenantConnector`], which says which pool serves a
//! tenant ([`PoolKey`]), builds the `bb8` manager of a new pool, and sets and resets a
//! tenant's scope on connections of pools shared by tenants. `tenant-manager-postgres`
//! provides the connector for sqlx `PgConnection`.
//!
//! ```no_run
//! # async fn demo<C: tenant_manager_core::pool::TenantConnector>(
//! #     connector: C,
//! #     tenant: tenant_manager_core::Tenant,
//! # ) -> tenant_manager_core::Result<()> {
//! use std::time::Duration;
//! use tenant_manager_core::pool::{PoolConfig, TenantPools};
//!
//! let pools = TenantPools::new(
//!     connector,
//!     PoolConfig::default()
//!         .with_max_total(10_000)
//!         .with_max_per_tenant(20)
//!         .with_idle_timeout(Duration::from_millis(1_800_000)),
//! )?;
//! let mut conn = pools.acquire(&tenant).await?; // scoped to `tenant`
//! // ... run queries on `&mut *conn` ...
//! drop(conn); // back to the pool (keeping the tenant's scope when it was left clean)
//! # Ok(()) }
//! ```
//!
//! # Metrics
#![doc = include_str!("metrics.md")]

mod affinity;
mod budget;
mod checkout;
mod cluster;
mod config;
mod connector;
mod engine;
mod evict;
mod inner;
mod managed;
mod metrics;
mod state;
mod tenant_pools;

#[cfg(feature = "testing")]
pub mod fake;

pub use cluster::ClusterBudget;
pub use config::PoolConfig;
pub use connector::{ConnectionOf, PoolKey, TenantConnector, TenantRoute};
pub use managed::CLOSE_TIMEOUT;
pub use tenant_pools::TenantPools;

/// The hasher of the registry and the tenant slots, hashed on every checkout: foldhash, seeded
/// at random per map, about 60 instructions for a `PoolKey` where SipHash took about 240
/// (cachegrind, `BENCHMARKS.md`). Its keys are tenant ids the tenant manager generated and pool
/// names from the configuration, never values a caller chooses, so SipHash's stronger
/// resistance to flooding buys nothing here.
pub(crate) type KeyHasher = foldhash::fast::RandomState;
