//! Refresh tokens on the real Postgres: the conformance suite of `RefreshTokenStore`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use tenant_manager_core::RefreshTokenStore;
use tenant_manager_core::testing::Fixture;
use tenant_manager_postgres::{PostgresRefreshTokens, migrate_global};
use tenant_manager_test_support::TestDatabase;

async fn store() -> Fixture<dyn RefreshTokenStore, TestDatabase> {
    let db = TestDatabase::create().await;
    let pool = db.pool().await;
    migrate_global(&pool).await.expect("migrate");
    Fixture::with_guard(Arc::new(PostgresRefreshTokens::new(pool)), db)
}

tenant_manager_core::refresh_token_conformance!(store);
