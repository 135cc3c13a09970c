//! Test support for tenant-manager: real Postgres and Redis for integration tests.
//!
//! URLs come from `TEST_DATABASE_URL` and `TEST_REDIS_URL` at run time, defaulting to the local
//! servers (`postgres://postgres@127.0.0.1:5432/postgres`, `redis://127.0.0.1:6379`). With the
//! `containers` feature and a Docker engine, a container is started when neither answers.
//! Otherwise the helpers fail with a message that says how to start the server: a test never
//! passes by skipping the backend it claims to test.
//!
//! Each test gets its own database ([`TestDatabase`]) or key prefix ([`TestRedis`]), removed
//! afterwards. Tests that kill and restart Redis start a [`PrivateRedis`] of their own; the
//! Redis Cluster tests start a three-master [`PrivateRedisCluster`].
//! [`legacy_layout`] turns a deployment provisioned with the tenant wall back into the layout
//! of the release before it (the wall's upgrade test and bench start there).

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod cleanup;
pub mod moto;
mod postgres;
mod private_pgbouncer;
mod private_postgres;
mod private_redis;
mod private_redis_cluster;
mod redis_support;
mod wall_legacy;

pub use cleanup::{
    block_on_thread, drop_databases_and_roles, drop_databases_and_roles_blocking, quote_ident,
};
pub use postgres::{TestDatabase, postgres_admin_url};
pub use private_pgbouncer::{PoolMode, PrivatePgBouncer};
pub use private_postgres::PrivatePostgres;
pub use private_redis::PrivateRedis;
pub use private_redis_cluster::PrivateRedisCluster;
pub use redis_support::{TestRedis, redis_url};
pub use wall_legacy::legacy_layout;

/// A short random suffix for names of test databases, roles and key prefixes.
pub fn unique_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}
