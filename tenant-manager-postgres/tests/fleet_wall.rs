//! Fleet migrations reuse a database's admin connections from one tenant to the next: nothing
//! a tenant's migration leaves on the session reaches the next tenant, and the wall's audit
//! still refuses, tenant by tenant, what would bypass it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use futures::StreamExt;
use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use tenant_manager_core::{Isolation, Tenant};
use tenant_manager_postgres::{FleetOptions, TenantMigrations, TenantMigrator};

use common::Env;
use common::fleet::{active_behind, migrate_fleet, migrator_with, schema_of};

const V2: i64 = 20240201000001;

/// The CRM set plus version 2 running `sql`.
fn migrator_plus(env: &Env, sql: &'static str) -> TenantMigrator {
    let mut migrations: Vec<Migration> = common::ISOLATED.iter().cloned().collect();
    migrations.push(Migration::new(
        V2,
        "version two".into(),
        MigrationType::Simple,
        sql.into_sql_str(),
        false,
    ));
    let set = Migrator::with_migrations(migrations);
    migrator_with(
        env,
        TenantMigrations::new(&set).with_shared(&common::SHARED),
    )
}

async fn schema_tenants(env: &Env, n: usize) -> Vec<Tenant> {
    let names: Vec<String> = (0..n).map(|i| format!("w{i:02}")).collect();
    let mut tenants: Vec<Tenant> = futures::stream::iter(names)
        .map(|name| async move { env.active(&name, Isolation::Schema).await })
        .buffer_unordered(4)
        .collect()
        .await;
    tenants.sort_by_key(|t| t.id);
    tenants
}

/// One tenant at a time, so every tenant after the first runs on the connection the one
/// before it used.
fn one_at_a_time() -> FleetOptions {
    FleetOptions::default().with_concurrency(1)
}

#[tokio::test]
async fn a_reused_connection_carries_nothing_to_the_next_tenant() {
    let env = Env::new().await;
    let tenants = schema_tenants(&env, 4).await;
    // Each tenant's migration writes down what its session held on arrival, then leaves a
    // session setting, an advisory lock and a sequence position behind.
    let migrator = migrator_plus(
        &env,
        "CREATE TABLE arrival AS SELECT \
             current_setting('app.leftover', true) AS leftover, \
             current_user::text AS who, current_schemas(false)::text AS path, \
             (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
                AND pid = pg_backend_pid() AND objid = 4242) AS locks; \
         SELECT set_config('app.leftover', current_schema(), false); \
         SELECT pg_advisory_lock(4242);",
    );
    migrate_fleet(&migrator, &one_at_a_time(), (4, 0)).await;
    let mut conn = env.admin(&env.shared_db).await;
    for tenant in &tenants {
        let schema = schema_of(tenant);
        let (leftover, who, path, locks): (Option<String>, String, String, i64) =
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT leftover, who, path, locks FROM \"{schema}\".arrival"
            )))
            .fetch_one(&mut conn)
            .await
            .expect("arrival");
        assert_eq!(leftover.unwrap_or_default(), "", "{schema}: setting left");
        assert_eq!(locks, 0, "{schema}: advisory lock left");
        assert_eq!(Some(who.as_str()), tenant.role_name().as_deref());
        assert_eq!(path, format!("{{{schema}}}"));
    }
    let _ = sqlx::Connection::close(conn).await;
    assert!(active_behind(&migrator).await.is_empty());
}

#[tokio::test]
async fn the_audit_refuses_a_bypass_in_every_tenant_of_a_fleet_run() {
    let env = Env::new().await;
    let tenants = schema_tenants(&env, 3).await;
    // A materialized view has no row-level security: refused in each tenant, each rolled back.
    let migrator = migrator_plus(
        &env,
        "CREATE MATERIALIZED VIEW company_names AS SELECT name FROM companies",
    );
    let report = migrate_fleet(&migrator, &one_at_a_time(), (0, 3)).await;
    for failure in report.failures() {
        let message = format!("{:?}", failure.error);
        assert!(message.contains("company_names"), "{message}");
        assert!(message.contains("materialized view"), "{message}");
    }
    assert_eq!(active_behind(&migrator).await.len(), 3);

    // An object the app login owns is refused in its tenant only; the tenants after it, on
    // fresh or reused connections, migrate.
    let app = env.storage.config().app_login.clone().expect("app login");
    let owned = &tenants[1];
    let mut conn = env.admin(&env.shared_db).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE SEQUENCE \"{schema}\".counter; ALTER SEQUENCE \"{schema}\".counter OWNER TO \"{app}\"",
        schema = schema_of(owned)
    )))
    .execute(&mut conn)
    .await
    .expect("app-owned sequence");
    let _ = sqlx::Connection::close(conn).await;
    let migrator = migrator_plus(&env, "ALTER TABLE companies ADD COLUMN industry text");
    let report = migrate_fleet(&migrator, &one_at_a_time(), (2, 1)).await;
    let failure = report.failures().next().expect("one failure");
    assert_eq!(failure.tenant, owned.id);
    let message = format!("{:?}", failure.error);
    assert!(message.contains("counter"), "{message}");
    assert!(message.contains("owned by the app login"), "{message}");
    let behind = active_behind(&migrator).await;
    assert_eq!(behind.len(), 1);
    assert_eq!(behind[0].tenant.id, owned.id);
}
