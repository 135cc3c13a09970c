//! Provisioning and fleet-migration throughput of the Postgres adapter, against the real local
//! Postgres (a bench binary: each measured operation creates roles, databases or schemas, so
//! it runs once per configuration rather than in criterion's sampling loop).
//!
//! ```sh
//! cargo bench --features postgres --bench provision
//! TM_BENCH_TENANTS=50 TM_BENCH_FLEET=1000 cargo bench --features postgres --bench provision
//! ```
//!
//! Knobs (environment): `TM_BENCH_TENANTS` tenants per isolation mode (default 40; 0 skips
//! those runs), `TM_BENCH_FLEET` schema tenants of the fleet migration (default 1,000),
//! `TM_BENCH_FLEET_CONCURRENCY` tenants migrated at once (default: `FleetOptions`' default),
//! `TM_BENCH_FLEET_RUNS` fleet migrations over the same fleet, each to one more new version
//! (default 1).
//!
//! Prints a Markdown table: tenants provisioned per second for each isolation mode (database
//! isolation with the template fast path and with migrations run in each new database), and
//! the time to migrate the fleet of schema tenants to a new migration version, with the load
//! average (`/proc/loadavg`) before and after the fleet migration, and where each run's time
//! went: the migrator's per-phase spans (connect, lock, wall entry, version check, apply, the
//! wall's securing and audit, commit, record), as a mean per tenant.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, SqlSafeStr};
use tenant_manager::postgres::{
    DerivedCredentials, FleetOptions, PostgresProvisioner, PostgresRegistry, ServerMap,
    StorageConfig, TenantMigrations, TenantMigrator, TenantStorage, WallKeys, migrate_global,
};
use tenant_manager::{
    Isolation, NewTenant, Placement, Provisioner, Secret, ServerId, Tenant, TenantRegistry,
    TenantSlug, TenantStatus,
};
use tenant_manager_test_support::{TestDatabase, unique_suffix};

#[path = "provision/phases.rs"]
mod phases;

static ISOLATED: Migrator = sqlx::migrate!("tenant-manager-postgres/tests/migrations/tenant");
static SHARED: Migrator = sqlx::migrate!("tenant-manager-postgres/tests/migrations/shared");

/// Tenants provisioned at once (each holds a few connections).
const CONCURRENCY: usize = 4;
/// Times the which-are-behind query runs (the median is reported).
const BEHIND_RUNS: usize = 5;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Bench {
    tag: String,
    shared_db: String,
    registry: PostgresRegistry,
    admin_url: String,
}

impl Bench {
    fn provisioner(&self, migrations: TenantMigrations, template: bool) -> PostgresProvisioner {
        let servers = ServerMap::single(&self.admin_url).expect("servers");
        let tag = &self.tag;
        let config = StorageConfig::default()
            .with_template(template)
            .with_template_prefix(format!("tmtpl_{tag}_"))
            .with_template_owner(format!("tmtplown_{tag}"))
            .with_shared_owner(format!("tmshown_{tag}"));
        let master = Secret::new(format!("bench-master-secret-{tag}-0123456789"));
        let storage = TenantStorage::new(self.registry.pool().clone(), servers, migrations, config)
            .expect("storage")
            .with_wall(WallKeys::derived(&master, 1).expect("wall key"));
        let credentials = DerivedCredentials::new(master).expect("credentials");
        PostgresProvisioner::new(storage, Arc::new(credentials))
    }

    async fn register(&self, name: &str, isolation: Isolation) -> Tenant {
        let slug = TenantSlug::new(format!("{}_{name}", self.tag)).expect("slug");
        let placement = Placement::conventional(
            &slug,
            isolation,
            ServerId::default_server(),
            &self.shared_db,
        );
        let new = NewTenant::new(slug, name, isolation)
            .expect("tenant")
            .with_placement(placement);
        let tenant = self.registry.create_tenant(new).await.expect("create");
        self.registry
            .transition(tenant.id, TenantStatus::Provisioning, None)
            .await
            .expect("provisioning")
    }

    /// Provisions `n` tenants `CONCURRENCY` at a time; returns them and the elapsed time.
    async fn provision_many(
        &self,
        provisioner: &PostgresProvisioner,
        prefix: &str,
        n: usize,
        isolation: Isolation,
    ) -> (Vec<Tenant>, Duration) {
        let mut tenants = Vec::with_capacity(n);
        for i in 0..n {
            tenants.push(self.register(&format!("{prefix}{i:04}"), isolation).await);
        }
        let started = Instant::now();
        futures::stream::iter(&tenants)
            .map(|t| async move {
                provisioner.provision(t).await.expect("provision");
                self.registry
                    .transition(t.id, TenantStatus::Active, None)
                    .await
                    .expect("active");
            })
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<()>>()
            .await;
        (tenants, started.elapsed())
    }

    async fn deprovision_all(&self, provisioner: &PostgresProvisioner, tenants: &[Tenant]) {
        futures::stream::iter(tenants)
            .map(|t| async move {
                self.registry
                    .transition(t.id, TenantStatus::Deleting, None)
                    .await
                    .expect("deleting");
                provisioner.deprovision(t).await.expect("deprovision");
                self.registry
                    .transition(t.id, TenantStatus::Deleted, None)
                    .await
                    .expect("deleted");
            })
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<()>>()
            .await;
    }
}

/// The CRM set plus `runs` new versions, each adding a column and an index to `companies`
/// (the scale run's migration).
fn version_plus(runs: usize) -> Migrator {
    let mut migrations: Vec<Migration> = ISOLATED.iter().cloned().collect();
    for run in 1..=runs {
        migrations.push(Migration::new(
            20240201000000 + run as i64,
            format!("company industry {run}").into(),
            MigrationType::Simple,
            // Leaked: a migration's SQL is `'static`; a few short strings per bench run.
            format!(
                "ALTER TABLE companies ADD COLUMN industry{run} text; \
                 CREATE INDEX companies_industry{run}_idx ON companies (industry{run})"
            )
            .leak()
            .into_sql_str(),
            false,
        ));
    }
    Migrator::with_migrations(migrations)
}

fn rate(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

/// The 1, 5 and 15 minute load averages, where the system shows them.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".to_owned())
}

async fn run(phases: phases::Phases) {
    let runs = env_usize("TM_BENCH_FLEET_RUNS", 1).max(1);
    let tenants = env_usize("TM_BENCH_TENANTS", 40);
    let fleet = env_usize("TM_BENCH_FLEET", 1000);
    let fleet_concurrency = env_usize(
        "TM_BENCH_FLEET_CONCURRENCY",
        FleetOptions::default().concurrency,
    );
    let db = TestDatabase::create().await;
    let options = PgConnectOptions::from_str(db.url())
        .expect("url")
        .disable_statement_logging();
    let pool = PgPoolOptions::new()
        .max_connections(12)
        .connect_with(options)
        .await
        .expect("pool");
    migrate_global(&pool).await.expect("migrate global");
    let bench = Bench {
        tag: format!("b{}", &unique_suffix()[..8]),
        shared_db: String::new(),
        registry: PostgresRegistry::new(pool),
        admin_url: db.admin_url().to_owned(),
    };
    let bench = Bench {
        shared_db: format!("tmsh_{}", bench.tag),
        ..bench
    };
    let _cleanup = Cleanup {
        admin_url: db.admin_url().to_owned(),
        tag: bench.tag.clone(),
    };
    let migrations = TenantMigrations::new(&ISOLATED).with_shared(&SHARED);
    let mut rows = Vec::new();

    let with_template = bench.provisioner(migrations.clone(), true);
    let started = Instant::now();
    with_template
        .prepare_template(&ServerId::default_server())
        .await
        .expect("template");
    let template_build = started.elapsed();
    for (label, prefix, isolation, provisioner) in [
        (
            "database, template fast path",
            "dt",
            Isolation::Database,
            with_template.clone(),
        ),
        (
            "database, migrations in each new database",
            "dm",
            Isolation::Database,
            bench.provisioner(migrations.clone(), false),
        ),
        ("schema", "sc", Isolation::Schema, with_template.clone()),
        (
            "shared (row-level security)",
            "sh",
            Isolation::Shared,
            with_template.clone(),
        ),
    ] {
        if tenants == 0 {
            break;
        }
        let (done, elapsed) = bench
            .provision_many(&provisioner, prefix, tenants, isolation)
            .await;
        rows.push(format!(
            "| provision {tenants} tenants: {label} | {:.1} tenants/s | {:.2} s |",
            rate(tenants, elapsed),
            elapsed.as_secs_f64()
        ));
        bench.deprovision_all(&provisioner, &done).await;
    }

    let (fleet_tenants, provisioned_in) = bench
        .provision_many(&with_template, "fl", fleet, Isolation::Schema)
        .await;
    rows.push(format!(
        "| provision {fleet} schema tenants (fleet set-up) | {:.1} tenants/s | {:.2} s |",
        rate(fleet, provisioned_in),
        provisioned_in.as_secs_f64()
    ));
    assert_eq!(fleet_tenants.len(), fleet);
    let mut phase_tables = Vec::new();
    for run in 1..=runs {
        let set = version_plus(run);
        let storage = TenantStorage::new(
            bench.registry.pool().clone(),
            with_template.storage().servers().clone(),
            TenantMigrations::new(&set).with_shared(&SHARED),
            with_template.storage().config().clone(),
        )
        .expect("storage")
        .with_wall(
            with_template
                .storage()
                .wall_keys()
                .cloned()
                .expect("wall key"),
        );
        let migrator = TenantMigrator::new(storage);
        let mut behind_times = Vec::with_capacity(BEHIND_RUNS);
        for _ in 0..BEHIND_RUNS {
            let started = Instant::now();
            let behind = migrator
                .behind(&[TenantStatus::Active])
                .await
                .expect("behind");
            behind_times.push(started.elapsed());
            assert_eq!(behind.len(), fleet);
        }
        let behind_first = behind_times[0];
        behind_times.sort();
        let behind_query = behind_times[BEHIND_RUNS / 2];
        let load_before = load_average();
        phases.take();
        let started = Instant::now();
        let report = migrator
            .migrate_all(
                &FleetOptions::default().with_concurrency(fleet_concurrency),
                None,
            )
            .await
            .expect("fleet");
        let migrated_in = started.elapsed();
        let totals = phases.take();
        let load_after = load_average();
        assert_eq!(
            report.succeeded(),
            fleet,
            "{:?}",
            report.results.iter().find(|r| r.error.is_some())
        );
        assert!(
            migrator
                .behind(&[TenantStatus::Active])
                .await
                .expect("behind after")
                .is_empty()
        );
        rows.push(format!(
            "| run {run}: which of {fleet} tenants are behind (one query, median of {BEHIND_RUNS}; first {:.1} ms) | | {:.1} ms |",
            behind_first.as_secs_f64() * 1000.0,
            behind_query.as_secs_f64() * 1000.0
        ));
        rows.push(format!(
            "| run {run}: migrate {fleet} schema tenants to a new version, concurrency {fleet_concurrency} (load average {load_before} before, {load_after} after) | {:.1} tenants/s | {:.2} min ({:.1} s) |",
            rate(fleet, migrated_in),
            migrated_in.as_secs_f64() / 60.0,
            migrated_in.as_secs_f64()
        ));
        phase_tables.push((run, phases::rows(&totals, fleet)));
    }
    rows.push(format!(
        "| build the template database (once per migration version) | | {:.2} s |",
        template_build.as_secs_f64()
    ));
    println!("| operation | throughput | time |\n|---|---|---|");
    for row in rows {
        println!("{row}");
    }
    for (run, table) in phase_tables {
        println!(
            "\nRun {run}, where the time went (span, count, mean per tenant, share of the tenants' time):\n\n| span | count | per tenant | share |\n|---|---|---|---|"
        );
        for row in table {
            println!("{row}");
        }
    }
    bench.registry.pool().close().await;
}

/// Drops every database and role of the run, also when it panics.
struct Cleanup {
    admin_url: String,
    tag: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        tenant_manager_test_support::drop_databases_and_roles_blocking(
            &self.admin_url,
            Some(&self.tag),
            &[],
        );
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    let phases = phases::Phases::install();
    rt.block_on(run(phases));
}
