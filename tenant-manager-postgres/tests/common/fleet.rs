//! Fleet migration helpers: a migrator over the test's storage with other migrations, the
//! checks of who is behind and of a run's counts, and the data fix of a tenant whose migration
//! failed.

use tenant_manager_core::{Tenant, TenantStatus};
use tenant_manager_postgres::migrate::BehindTenant;
use tenant_manager_postgres::{
    FleetOptions, FleetReport, TenantMigrations, TenantMigrator, TenantStorage,
};

use super::Env;

/// A migrator over `env`'s storage (same servers and settings) running `migrations`.
pub fn migrator_with(env: &Env, migrations: TenantMigrations) -> TenantMigrator {
    let storage = TenantStorage::new(
        env.pool.clone(),
        env.storage.servers().clone(),
        migrations,
        env.storage.config().clone(),
    )
    .expect("storage")
    .with_wall(env.storage.wall_keys().cloned().expect("wall key"));
    TenantMigrator::new(storage)
}

/// The active tenants behind the newest migration.
pub async fn active_behind(migrator: &TenantMigrator) -> Vec<BehindTenant> {
    migrator
        .behind(&[TenantStatus::Active])
        .await
        .expect("behind")
}

/// Asserts that `n` active tenants are behind, each at `version` of `latest`.
pub async fn assert_all_behind(migrator: &TenantMigrator, n: usize, version: i64, latest: i64) {
    let behind = active_behind(migrator).await;
    assert_eq!(behind.len(), n);
    assert!(
        behind
            .iter()
            .all(|b| b.version == version && b.latest == latest)
    );
}

/// Runs the fleet migration with `options` (no progress callback) and asserts how many
/// tenants it migrated and how many failed.
pub async fn migrate_fleet(
    migrator: &TenantMigrator,
    options: &FleetOptions,
    (succeeded, failed): (usize, usize),
) -> FleetReport {
    let report = migrator
        .migrate_all(options, None)
        .await
        .expect("fleet run");
    assert_eq!((report.succeeded(), report.failed()), (succeeded, failed));
    report
}

/// The schema holding a tenant's tables (`public` for a database tenant).
pub fn schema_of(tenant: &Tenant) -> &str {
    tenant.placement.schema.as_deref().unwrap_or("public")
}

/// Deletes the company `bb`, the duplicate that breaks the unique domain constraint or index.
pub async fn remove_duplicate(env: &Env, tenant: &Tenant) {
    let mut conn = env.admin(&tenant.placement.database).await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM \"{}\".companies WHERE name = 'bb'",
        schema_of(tenant)
    )))
    .execute(&mut conn)
    .await
    .expect("fix");
    let _ = sqlx::Connection::close(conn).await;
}
