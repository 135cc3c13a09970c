//! Fleet migrations: 200 schema tenants with one broken, a rerun that finishes it, the
//! failure budget and the canary wave.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use tenant_manager_core::{Isolation, Tenant};
use tenant_manager_postgres::{FleetOptions, TenantMigrations, TenantMigrator};

use common::fleet::{
    active_behind, assert_all_behind, migrate_fleet, migrator_with, remove_duplicate,
};
use common::{Env, add_companies};

/// The CRM set plus version 2: company domains become unique.
fn version_two() -> Migrator {
    let mut migrations: Vec<Migration> = common::ISOLATED.iter().cloned().collect();
    migrations.push(Migration::new(
        20240201000001,
        "unique company domains".into(),
        MigrationType::Simple,
        "ALTER TABLE companies ADD CONSTRAINT companies_domain_key UNIQUE (domain)".into_sql_str(),
        false,
    ));
    Migrator::with_migrations(migrations)
}

fn migrator_v2(env: &Env) -> TenantMigrator {
    migrator_with(
        env,
        TenantMigrations::new(&version_two()).with_shared(&common::SHARED),
    )
}

async fn active_tenants(env: &Env, n: usize, isolation: Isolation) -> Vec<Tenant> {
    let names: Vec<String> = (0..n).map(|i| format!("f{i:03}")).collect();
    let mut tenants: Vec<Tenant> = futures::stream::iter(names)
        .map(|name| async move { env.active(&name, isolation).await })
        .buffer_unordered(4)
        .collect()
        .await;
    tenants.sort_by_key(|t| t.id);
    tenants
}

async fn constraint_exists(env: &Env, tenant: &Tenant) -> bool {
    let mut conn = env.admin(&env.shared_db).await;
    let exists = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace \
         WHERE c.conname = 'companies_domain_key' AND n.nspname = $1)",
    )
    .bind(tenant.placement.schema.as_deref().expect("schema"))
    .fetch_one(&mut conn)
    .await
    .expect("constraint");
    let _ = sqlx::Connection::close(conn).await;
    exists
}

#[tokio::test]
async fn two_hundred_schema_tenants_with_one_broken_then_a_rerun() {
    let env = Env::new().await;
    let tenants = active_tenants(&env, 200, Isolation::Schema).await;
    // Two companies of one tenant share a domain: the new unique constraint fails there.
    let broken = &tenants[137];
    add_companies(&env, broken, &["aa", "bb"]).await;

    let migrator = migrator_v2(&env);
    assert_all_behind(&migrator, 200, 20240101000001, 20240201000001).await;

    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let progress: tenant_manager_postgres::migrate::ProgressFn = Arc::new(move |p| {
        seen.fetch_add(1, Ordering::SeqCst);
        assert!(p.done <= p.total && p.total == 200);
    });
    let options = FleetOptions::default().with_concurrency(4);
    let report = migrator
        .migrate_all(&options, Some(progress))
        .await
        .expect("run");
    assert_eq!((report.succeeded(), report.failed()), (199, 1));
    assert!(!report.halted);
    assert_eq!(calls.load(Ordering::SeqCst), 200);
    let failure = report.failures().next().expect("one failure");
    assert_eq!(failure.tenant, broken.id);
    assert_eq!(failure.to_version, 20240101000001);
    let message = format!("{:?}", failure.error);
    assert!(message.contains("companies_domain_key"), "{message}");
    assert!(message.contains("20240201000001"), "{message}");
    assert!(
        !constraint_exists(&env, broken).await,
        "the failed set rolled back whole"
    );
    assert!(constraint_exists(&env, &tenants[0]).await);

    // One query says who is behind and why.
    let behind = active_behind(&migrator).await;
    assert_eq!(behind.len(), 1);
    assert_eq!(behind[0].tenant.id, broken.id);
    let last_error = behind[0].last_error.clone().unwrap_or_default();
    assert!(last_error.contains("20240201000001"), "{last_error}");

    // Fix the data, rerun: only the broken tenant is migrated.
    remove_duplicate(&env, broken).await;
    let rerun = migrate_fleet(&migrator, &options, (1, 0)).await;
    assert_eq!(rerun.results[0].tenant, broken.id);
    assert!(constraint_exists(&env, broken).await);
    assert!(active_behind(&migrator).await.is_empty());
    assert_eq!(
        migrator
            .migrate_all(&options, None)
            .await
            .expect("noop")
            .results
            .len(),
        0
    );
}

#[tokio::test]
async fn failure_budget_and_canaries_halt_the_run() {
    let env = Env::new().await;
    let tenants = active_tenants(&env, 8, Isolation::Schema).await;
    for broken in [&tenants[0], &tenants[1]] {
        add_companies(&env, broken, &["aa", "bb"]).await;
    }
    let migrator = migrator_v2(&env);

    // Canaries: the first 25% (2 tenants, both broken) fail, the rest is not started.
    let canary = FleetOptions::default()
        .with_concurrency(2)
        .with_canary_percent(Some(25));
    let report = migrate_fleet(&migrator, &canary, (0, 2)).await;
    assert!(report.halted);
    assert_eq!(report.not_started.len(), 6);

    // One at a time with a budget of one failure: the first tenant fails, nothing else starts.
    let budget = FleetOptions::default()
        .with_concurrency(1)
        .with_max_failures(Some(1));
    let report = migrate_fleet(&migrator, &budget, (0, 1)).await;
    assert!(report.halted);
    assert_eq!(report.not_started.len(), 7);

    // Continue on error: the six healthy tenants migrate, the two broken ones are reported.
    let report = migrate_fleet(&migrator, &FleetOptions::default(), (6, 2)).await;
    assert!(!report.halted);

    for bad in [
        FleetOptions::default().with_concurrency(0),
        FleetOptions::default().with_max_failures(Some(0)),
        FleetOptions::default().with_canary_percent(Some(0)),
    ] {
        assert_eq!(
            migrator
                .migrate_all(&bad, None)
                .await
                .err()
                .map(|e| e.code()),
            Some("invalid_input")
        );
    }
}

#[tokio::test]
async fn database_and_shared_tenants_migrate_too() {
    let env = Env::new().await;
    let db_tenant = env.active("dbt", Isolation::Database).await;
    let shared = env.active("sht", Isolation::Shared).await;
    let migrator = migrator_v2(&env);
    let behind = active_behind(&migrator).await;
    // Only the database tenant is behind: the shared set did not change.
    assert_eq!(
        behind.iter().map(|b| b.tenant.id).collect::<Vec<_>>(),
        vec![db_tenant.id]
    );
    migrate_fleet(&migrator, &FleetOptions::default(), (1, 0)).await;
    assert_eq!(
        migrator.migrate_tenant(&shared).await.expect("shared"),
        20240101000001
    );
    assert_eq!(
        migrator.migrate_tenant(&db_tenant).await.expect("again"),
        20240201000001
    );
}

/// Events published on `bus` until it is quiet for 200 ms.
async fn drain(
    stream: &mut tenant_manager_core::EventStream,
) -> Vec<tenant_manager_core::TenantEvent> {
    let mut seen = Vec::new();
    while let Ok(Some(event)) =
        tokio::time::timeout(std::time::Duration::from_millis(200), stream.next()).await
    {
        seen.push(event);
    }
    seen
}

#[tokio::test]
async fn each_tenant_a_fleet_run_migrates_is_published_once_as_migrated() {
    use tenant_manager_core::memory::InMemoryEventBus;
    use tenant_manager_core::{Actor, EventBus, EventKind};

    let env = Env::new().await;
    let tenants = active_tenants(&env, 6, Isolation::Schema).await;
    let broken = &tenants[2];
    add_companies(&env, broken, &["aa", "bb"]).await;
    let bus = Arc::new(InMemoryEventBus::default());
    let mut stream = bus.subscribe().await.expect("subscribe");
    let migrator = migrator_v2(&env).with_events(bus.clone(), Actor::Admin);
    let options = FleetOptions::default().with_concurrency(3);
    let report = migrate_fleet(&migrator, &options, (5, 1)).await;
    assert_eq!(report.failed(), 1);

    let events = drain(&mut stream).await;
    assert_eq!(events.len(), 5, "{events:?}");
    let mut ids: Vec<_> = events.iter().map(|e| e.tenant_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5, "one event per migrated tenant");
    assert!(
        !ids.contains(&broken.id),
        "the failed tenant is not migrated"
    );
    for event in &events {
        assert_eq!(event.kind, EventKind::Migrated);
        assert_eq!(event.actor, Actor::Admin);
        assert_eq!(event.details["from_version"], 20240101000001_i64);
        assert_eq!(event.details["to_version"], 20240201000001_i64);
    }

    // A rerun with nothing new to apply publishes nothing; finishing the broken one, one.
    let again = migrator.migrate_all(&options, None).await.expect("rerun");
    assert_eq!(again.succeeded(), 0);
    assert!(drain(&mut stream).await.is_empty());
    remove_duplicate(&env, broken).await;
    migrate_fleet(&migrator, &options, (1, 0)).await;
    let last = drain(&mut stream).await;
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].tenant_id, broken.id);
}
