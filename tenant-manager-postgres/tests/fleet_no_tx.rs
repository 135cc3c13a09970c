//! Fleet migrations with a migration marked `-- no-transaction` (`CREATE UNIQUE INDEX
//! CONCURRENTLY`, which Postgres refuses inside a transaction block), checked in Postgres
//! itself: schema and database tenants get the index, versions are recorded in the tenant and
//! in the global database, a rerun changes nothing, a tenant whose index fails is reported and
//! finished by a rerun, and two runs at once migrate each tenant once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use sqlx::migrate::{Migration, Migrator};
use tenant_manager_core::{Isolation, Tenant};
use tenant_manager_postgres::{FleetOptions, TenantMigrations, TenantMigrator};

use common::fleet::{
    active_behind, assert_all_behind, migrate_fleet, migrator_with, remove_duplicate, schema_of,
};
use common::{Env, add_companies};

/// A plain migration (adds `companies.industry`), then the no-transaction one.
static NO_TX: Migrator = sqlx::migrate!("tests/migrations/no_tx");

const CRM: i64 = 20240101000001;
const INDUSTRY: i64 = 20240301000001;
const DOMAIN_INDEX: i64 = 20240301000002;
const INDEX: &str = "companies_domain_idx";

/// The CRM set followed by the two migrations of `tests/migrations/no_tx`.
fn with_index() -> TenantMigrations {
    let migrations: Vec<Migration> = common::ISOLATED
        .iter()
        .chain(NO_TX.iter())
        .cloned()
        .collect();
    assert!(
        migrations
            .iter()
            .any(|m| m.version == DOMAIN_INDEX && m.no_tx),
        "the index migration is marked -- no-transaction"
    );
    TenantMigrations::new(&Migrator::with_migrations(migrations)).with_shared(&common::SHARED)
}

fn migrator(env: &Env) -> TenantMigrator {
    migrator_with(env, with_index())
}

/// What Postgres says about one tenant's storage.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Observed {
    /// The index's oid and whether it is valid, from `pg_indexes` and `pg_index`.
    index: Option<(i64, bool)>,
    /// Versions in the tenant's `_sqlx_migrations`, every row (failed ones too).
    versions: Vec<(i64, bool)>,
    /// Whether `companies.industry` exists.
    industry: bool,
}

async fn observe(env: &Env, tenant: &Tenant) -> Observed {
    let schema = schema_of(tenant);
    let mut conn = env.admin(&tenant.placement.database).await;
    let index: Option<(i64, bool)> = sqlx::query_as(
        "SELECT c.oid::int8, i.indisvalid FROM pg_indexes x \
         JOIN pg_namespace n ON n.nspname = x.schemaname \
         JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = x.indexname \
         JOIN pg_index i ON i.indexrelid = c.oid \
         WHERE x.schemaname = $1 AND x.tablename = 'companies' AND x.indexname = $2 \
           AND x.indexdef LIKE 'CREATE UNIQUE INDEX%'",
    )
    .bind(schema)
    .bind(INDEX)
    .fetch_optional(&mut conn)
    .await
    .expect("pg_indexes");
    let versions: Vec<(i64, bool)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT version, success FROM \"{schema}\"._sqlx_migrations ORDER BY version"
    )))
    .fetch_all(&mut conn)
    .await
    .expect("_sqlx_migrations");
    let industry: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns \
         WHERE table_schema = $1 AND table_name = 'companies' AND column_name = 'industry')",
    )
    .bind(schema)
    .fetch_one(&mut conn)
    .await
    .expect("columns");
    let _ = sqlx::Connection::close(conn).await;
    Observed {
        index,
        versions,
        industry,
    }
}

/// The version and last error the global database records for a tenant.
async fn recorded(env: &Env, tenant: &Tenant) -> (i64, Option<String>) {
    sqlx::query_as("SELECT version, last_error FROM tm_tenant_migrations WHERE tenant_id = $1")
        .bind(tenant.id.as_uuid())
        .fetch_one(&env.pool)
        .await
        .expect("tm_tenant_migrations")
}

fn applied(versions: &[i64]) -> Vec<(i64, bool)> {
    versions.iter().map(|v| (*v, true)).collect()
}

/// Asserts a tenant is fully migrated: a valid unique index, every version recorded once in
/// its storage and the newest in the global database.
async fn assert_migrated(env: &Env, tenant: &Tenant) -> Observed {
    let seen = observe(env, tenant).await;
    assert_eq!(
        seen.index.map(|(_, valid)| valid),
        Some(true),
        "{}: valid index",
        tenant.slug
    );
    assert_eq!(seen.versions, applied(&[CRM, INDUSTRY, DOMAIN_INDEX]));
    assert!(seen.industry);
    assert_eq!(recorded(env, tenant).await, (DOMAIN_INDEX, None));
    seen
}

async fn activate_all(env: &Env, names: &[(&str, Isolation)]) -> Vec<Tenant> {
    let mut tenants = Vec::new();
    for (name, isolation) in names {
        tenants.push(env.active(name, *isolation).await);
    }
    tenants
}

#[tokio::test]
async fn no_transaction_migration_on_schema_and_database_tenants_then_a_failure_and_reruns() {
    let env = Env::new().await;
    let tenants = activate_all(
        &env,
        &[
            ("s0", Isolation::Schema),
            ("s1", Isolation::Schema),
            ("s2", Isolation::Schema),
            ("d0", Isolation::Database),
            ("d1", Isolation::Database),
        ],
    )
    .await;
    for tenant in &tenants {
        add_companies(&env, tenant, &["one"]).await;
    }
    // Two companies of the same domain: the unique index cannot be built there.
    let broken = [&tenants[1], &tenants[4]];
    for tenant in broken {
        add_companies(&env, tenant, &["aa", "bb"]).await;
    }
    let healthy = [&tenants[0], &tenants[2], &tenants[3]];
    let is_broken = |id| broken.iter().any(|b| b.id == id);

    let migrator = migrator(&env);
    assert_all_behind(&migrator, 5, CRM, DOMAIN_INDEX).await;

    let report = migrate_fleet(&migrator, &FleetOptions::default(), (3, 2)).await;
    assert!(!report.halted);
    for result in &report.results {
        if is_broken(result.tenant) {
            let message = format!("{:?}", result.error);
            assert!(message.contains(&DOMAIN_INDEX.to_string()), "{message}");
            assert!(message.contains(INDEX), "{message}");
            // The plain migration before the index committed on its own.
            assert_eq!((result.from_version, result.to_version), (CRM, INDUSTRY));
        } else {
            assert_eq!(
                (result.from_version, result.to_version),
                (CRM, DOMAIN_INDEX)
            );
        }
    }
    for tenant in healthy {
        assert_migrated(&env, tenant).await;
    }
    for tenant in broken {
        let seen = observe(&env, tenant).await;
        // No invalid index is left behind to block the rerun.
        assert_eq!(seen.index, None, "{}", tenant.slug);
        assert_eq!(seen.versions, applied(&[CRM, INDUSTRY]));
        assert!(seen.industry);
        let (version, last_error) = recorded(&env, tenant).await;
        assert_eq!(version, INDUSTRY);
        let last_error = last_error.unwrap_or_default();
        assert!(
            last_error.contains(&DOMAIN_INDEX.to_string()),
            "{last_error}"
        );
    }

    // Who is behind, and where each stopped.
    let mut behind: Vec<_> = active_behind(&migrator)
        .await
        .into_iter()
        .map(|b| (b.tenant.id, b.version))
        .collect();
    behind.sort();
    let mut expected: Vec<_> = broken.iter().map(|t| (t.id, INDUSTRY)).collect();
    expected.sort();
    assert_eq!(behind, expected);

    // Rerun before fixing the data: the same failure (the index itself, not a leftover of the
    // first attempt), and still nothing left behind.
    let again = migrate_fleet(&migrator, &FleetOptions::default(), (0, 2)).await;
    for failure in again.failures() {
        let message = format!("{:?}", failure.error);
        assert!(message.contains(&DOMAIN_INDEX.to_string()), "{message}");
        assert!(!message.contains("already exists"), "{message}");
        assert_eq!(
            (failure.from_version, failure.to_version),
            (INDUSTRY, INDUSTRY)
        );
    }
    for tenant in broken {
        assert_eq!(observe(&env, tenant).await.index, None);
    }

    // Fix the data and rerun: only the two broken tenants are migrated, and finish.
    for tenant in broken {
        remove_duplicate(&env, tenant).await;
    }
    let rerun = migrate_fleet(&migrator, &FleetOptions::default(), (2, 0)).await;
    assert!(rerun.results.iter().all(|r| is_broken(r.tenant)));
    assert!(
        rerun
            .results
            .iter()
            .all(|r| (r.from_version, r.to_version) == (INDUSTRY, DOMAIN_INDEX))
    );
    let mut before = Vec::new();
    for tenant in &tenants {
        before.push(assert_migrated(&env, tenant).await);
    }
    assert!(active_behind(&migrator).await.is_empty());

    // Reruns are no-ops: the fleet finds no one behind, and migrating a tenant directly changes
    // nothing in Postgres (same index, same version rows).
    let noop = migrator
        .migrate_all(&FleetOptions::default(), None)
        .await
        .expect("noop");
    assert!(noop.results.is_empty() && noop.not_started.is_empty());
    for (tenant, seen) in tenants.iter().zip(&before) {
        assert_eq!(
            migrator.migrate_tenant(tenant).await.expect("direct"),
            DOMAIN_INDEX
        );
        assert_eq!(&observe(&env, tenant).await, seen);
    }
}

#[tokio::test]
async fn two_runs_at_once_migrate_each_tenant_once() {
    let env = Env::new().await;
    let tenants = activate_all(
        &env,
        &[
            ("c0", Isolation::Schema),
            ("c1", Isolation::Schema),
            ("c2", Isolation::Schema),
            ("c3", Isolation::Database),
        ],
    )
    .await;
    for tenant in &tenants {
        add_companies(&env, tenant, &["one", "three"]).await;
    }
    let (a, b) = (migrator(&env), migrator(&env));
    let options = FleetOptions::default().with_concurrency(2);
    // Both runs see every tenant behind and start them in the same order: each tenant is
    // migrated by whichever run takes its lock first; the other then finds nothing to do.
    let (ra, rb) = tokio::join!(a.migrate_all(&options, None), b.migrate_all(&options, None));
    for report in [ra.expect("run a"), rb.expect("run b")] {
        let failures: Vec<_> = report
            .failures()
            .map(|f| format!("{:?}", f.error))
            .collect();
        assert!(failures.is_empty(), "{failures:?}");
    }
    for tenant in &tenants {
        assert_migrated(&env, tenant).await;
    }
}

#[tokio::test]
async fn new_tenants_get_a_no_transaction_migration_when_provisioned() {
    let env = Env::with(with_index(), |c| c).await;
    let tenants = activate_all(
        &env,
        &[("n0", Isolation::Schema), ("n1", Isolation::Database)],
    )
    .await;
    for tenant in &tenants {
        assert_migrated(&env, tenant).await;
    }
}
