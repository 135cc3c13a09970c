//! Drift detection on the real Postgres: a fresh fleet of every isolation mode has none; each
//! way of drifting one tenant (index dropped, column added, column retyped, policy altered,
//! constraint dropped, shared policy dropped) is found on that tenant only, as exactly that
//! difference; each tenant is compared with the schema of its own recorded version.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use tenant_manager_core::{Isolation, Tenant};
use tenant_manager_postgres::migrate::drift::{Change, DriftedStorage, ObjectKind};
use tenant_manager_postgres::{
    DriftChecker, DriftOptions, DriftReport, TenantMigrations, TenantMigrator,
};

use common::Env;
use common::fleet::{migrator_with, schema_of};

/// Version 2 of both sets: an index on company names and a check that names are not empty.
const V2: i64 = 20240201000001;
const V2_SQL: &str = "CREATE INDEX companies_name_idx ON companies (name); \
     ALTER TABLE companies ADD CONSTRAINT companies_name_check CHECK (name <> '')";

fn with_v2(base: &Migrator) -> Migrator {
    let mut migrations: Vec<Migration> = base.iter().cloned().collect();
    migrations.push(Migration::new(
        V2,
        "company name index and check".into(),
        MigrationType::Simple,
        V2_SQL.into_sql_str(),
        false,
    ));
    Migrator::with_migrations(migrations)
}

fn set_v2() -> TenantMigrations {
    TenantMigrations::new(&with_v2(&common::ISOLATED)).with_shared(&with_v2(&common::SHARED))
}

async fn check(checker: &DriftChecker) -> DriftReport {
    checker
        .check(&DriftOptions::default())
        .await
        .expect("drift check")
}

/// Runs `sql` as the admin in the schema of `tenant`'s storage.
async fn tamper(env: &Env, tenant: &Tenant, sql: &str) {
    let mut conn = env.admin(&tenant.placement.database).await;
    let schema = schema_of(tenant);
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "SET search_path = \"{schema}\"; {sql}"
    )))
    .execute(&mut conn)
    .await
    .expect("tamper");
    let _ = sqlx::Connection::close(conn).await;
}

/// The differences of each drifted storage as (kind, table, name, change), by tenant slug.
fn by_tenant(report: &DriftReport) -> BTreeMap<String, Vec<(ObjectKind, String, String, Change)>> {
    let mut found = BTreeMap::new();
    for drifted in &report.drifted {
        let DriftedStorage {
            tenants,
            differences,
            ..
        } = drifted;
        let diffs: Vec<_> = differences
            .iter()
            .map(|d| {
                (
                    d.kind,
                    d.table.clone().unwrap_or_default(),
                    d.name.clone(),
                    d.change,
                )
            })
            .collect();
        for tenant in tenants {
            found.insert(tenant.slug.clone(), diffs.clone());
        }
    }
    found
}

fn one(kind: ObjectKind, name: &str, change: Change) -> Vec<(ObjectKind, String, String, Change)> {
    vec![(kind, "companies".to_owned(), name.to_owned(), change)]
}

#[tokio::test]
async fn each_drift_is_found_on_its_tenant_only_as_exactly_that_difference() {
    let env = Env::with(set_v2(), |c| c).await;
    let db_a = env.active("dba", Isolation::Database).await;
    let db_b = env.active("dbb", Isolation::Database).await;
    let sc_a = env.active("sca", Isolation::Schema).await;
    let sc_b = env.active("scb", Isolation::Schema).await;
    let sc_c = env.active("scc", Isolation::Schema).await;
    let sc_d = env.active("scd", Isolation::Schema).await;
    let sh_a = env.active("sha", Isolation::Shared).await;
    let sh_b = env.active("shb", Isolation::Shared).await;
    let checker = DriftChecker::new(env.storage.clone());

    let fresh = check(&checker).await;
    assert!(fresh.is_clean(), "{fresh:#?}");
    // Two databases, four schemas, one shared database of two tenants.
    assert_eq!((fresh.storages_checked, fresh.tenants_checked), (7, 8));

    tamper(&env, &db_a, "DROP INDEX companies_name_idx").await;
    tamper(&env, &db_b, "ALTER TABLE companies ADD COLUMN notes text").await;
    tamper(
        &env,
        &sc_a,
        "ALTER TABLE companies ALTER COLUMN domain TYPE varchar(100)",
    )
    .await;
    tamper(
        &env,
        &sc_b,
        "ALTER POLICY tenant_wall ON companies USING (true)",
    )
    .await;
    tamper(
        &env,
        &sc_c,
        "ALTER TABLE companies DROP CONSTRAINT companies_name_check",
    )
    .await;
    tamper(&env, &sh_a, "DROP POLICY tenant_wall ON companies").await;

    let report = check(&checker).await;
    assert!(report.failed.is_empty(), "{report:#?}");
    assert_eq!((report.storages_checked, report.tenants_checked), (7, 8));
    let found = by_tenant(&report);
    let slug = |t: &Tenant| t.slug.to_string();
    let expected = BTreeMap::from([
        (
            slug(&db_a),
            one(ObjectKind::Index, "companies_name_idx", Change::Missing),
        ),
        (slug(&db_b), one(ObjectKind::Column, "notes", Change::Extra)),
        (
            slug(&sc_a),
            one(ObjectKind::Column, "domain", Change::Changed),
        ),
        (
            slug(&sc_b),
            one(ObjectKind::Policy, "tenant_wall", Change::Changed),
        ),
        (
            slug(&sc_c),
            one(
                ObjectKind::Constraint,
                "companies_name_check",
                Change::Missing,
            ),
        ),
        (
            slug(&sh_a),
            one(ObjectKind::Policy, "tenant_wall", Change::Missing),
        ),
        (
            slug(&sh_b),
            one(ObjectKind::Policy, "tenant_wall", Change::Missing),
        ),
    ]);
    assert_eq!(found, expected, "{report:#?}");
    assert!(!found.contains_key(&slug(&sc_d)));
    assert_eq!(report.drifted_tenants(), 7);

    // What each difference says: the definitions on both sides, the schema name and the
    // tenant's id normalised away.
    let retyped = report
        .drifted
        .iter()
        .find(|d| d.tenants[0].id == sc_a.id)
        .expect("sc_a drifted");
    assert_eq!(retyped.differences[0].expected.as_deref(), Some("text"));
    assert_eq!(
        retyped.differences[0].actual.as_deref(),
        Some("character varying(100)")
    );
    let policy = report
        .drifted
        .iter()
        .find(|d| d.tenants[0].id == sc_b.id)
        .expect("sc_b drifted");
    let want = policy.differences[0].expected.as_deref().expect("expected");
    assert!(want.contains("'<tenant>'::uuid"), "{want}");
    assert!(!want.contains(&sc_b.id.to_string()), "{want}");
    assert!(
        policy.differences[0]
            .actual
            .as_deref()
            .is_some_and(|a| a.contains("using (true)")),
        "{policy:#?}"
    );
    let shared = report
        .drifted
        .iter()
        .find(|d| d.isolation == Isolation::Shared)
        .expect("shared drifted");
    assert_eq!(shared.tenants.len(), 2);
    assert_eq!(shared.storage.database, env.shared_db);
}

#[tokio::test]
async fn each_tenant_is_compared_with_its_own_recorded_version() {
    // Tenants provisioned at version 1; the checker and migrator know version 2.
    let env = Env::new().await;
    let behind = env.active("old", Isolation::Schema).await;
    let moved = env.active("new", Isolation::Database).await;
    let v2 = migrator_with(&env, set_v2());
    let checker = DriftChecker::new(v2_storage(&env));

    let report = check(&checker).await;
    assert!(report.is_clean(), "{report:#?}");

    let migrated: &TenantMigrator = &v2;
    assert_eq!(migrated.migrate_tenant(&moved).await.expect("migrate"), V2);
    let report = check(&checker).await;
    assert!(report.is_clean(), "{report:#?}");
    assert_eq!(report.tenants_checked, 2);

    // The registry claims version 2 for a tenant still at version 1: its history, the index
    // and the constraint are behind.
    sqlx::query("UPDATE tm_tenant_migrations SET version = $2 WHERE tenant_id = $1")
        .bind(behind.id.as_uuid())
        .bind(V2)
        .execute(&env.pool)
        .await
        .expect("record");
    let report = check(&checker).await;
    let found = by_tenant(&report);
    assert_eq!(found.len(), 1, "{report:#?}");
    let diffs = &found[&behind.slug.to_string()];
    assert_eq!(
        diffs,
        &vec![
            (
                ObjectKind::MigrationVersion,
                String::new(),
                "_sqlx_migrations".to_owned(),
                Change::Changed
            ),
            (
                ObjectKind::Index,
                "companies".to_owned(),
                "companies_name_idx".to_owned(),
                Change::Missing
            ),
            (
                ObjectKind::Constraint,
                "companies".to_owned(),
                "companies_name_check".to_owned(),
                Change::Missing
            ),
        ]
    );
}

#[tokio::test]
async fn a_dropped_schema_is_reported_and_bad_options_are_refused() {
    let env = Env::new().await;
    let gone = env.active("gone", Isolation::Schema).await;
    let kept = env.active("kept", Isolation::Schema).await;
    let mut conn = env.admin(&env.shared_db).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA \"{}\" CASCADE",
        schema_of(&gone)
    )))
    .execute(&mut conn)
    .await
    .expect("drop schema");
    let _ = sqlx::Connection::close(conn).await;
    let checker = DriftChecker::new(env.storage.clone());
    let report = check(&checker).await;
    let found = by_tenant(&report);
    assert_eq!(found.len(), 1, "{report:#?}");
    assert_eq!(
        found[&gone.slug.to_string()],
        vec![(
            ObjectKind::Storage,
            String::new(),
            schema_of(&gone).to_owned(),
            Change::Missing
        )]
    );
    assert!(!found.contains_key(&kept.slug.to_string()));

    for bad in [0, 33] {
        let err = checker
            .check(&DriftOptions::default().with_concurrency(bad))
            .await
            .expect_err("refused");
        assert_eq!(err.field(), Some("concurrency"));
    }
}

/// `env`'s storage with the version-2 sets.
fn v2_storage(env: &Env) -> tenant_manager_postgres::TenantStorage {
    tenant_manager_postgres::TenantStorage::new(
        env.pool.clone(),
        env.storage.servers().clone(),
        set_v2(),
        env.storage.config().clone(),
    )
    .expect("storage")
    .with_wall(env.storage.wall_keys().cloned().expect("wall key"))
}
