//! Pooled Postgres connections scoped to one tenant: the `bb8` manager of sqlx
//! `PgConnection`s and the connector of the core pool engine.
//!
//! ```no_run
//! # async fn demo(tenant: tenant_manager_core::Tenant) -> tenant_manager_core::Result<()> {
//! use std::sync::Arc;
//! use tenant_manager_core::pool::PoolConfig;
//! use tenant_manager_core::Secret;
//! use tenant_manager_postgres::{
//!     AppLogin, DEFAULT_APP_LOGIN, DerivedCredentials, PgTenantConnector, ServerMap,
//! };
//!
//! let servers = ServerMap::single("postgres://admin:secret@db:5432/postgres")?;
//! let master = Secret::new("a master secret of 32+ bytes!!");
//! let credentials = Arc::new(DerivedCredentials::new(master.clone())?);
//! // Schema and shared tenants share connections of an unprivileged login (created by
//! // `PostgresProvisioner::ensure_app_login`), so Postgres itself keeps them apart.
//! let pools = PgTenantConnector::new(servers, credentials)
//!     .with_app_login(AppLogin::derived(DEFAULT_APP_LOGIN, &master)?)
//!     .with_application_name("my-saas")
//!     .into_pools(PoolConfig::default().with_max_total(400).with_max_per_tenant(20))?;
//! let mut conn = pools.acquire(&tenant).await?;
//! sqlx::query("SELECT 1").execute(&mut *conn).await.ok();
//! # Ok(()) }
//! ```

mod connector;
mod manager;
mod scope;

pub use connector::{DEFAULT_APPLICATION_NAME, PgTenantConnector, PgTenantPools};
pub use manager::PgConnectionManager;
