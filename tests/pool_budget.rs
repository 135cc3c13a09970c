//! The Postgres pool engine through the facade keeps its budget against a real server: while
//! twelve checkouts of four tenants run, `pg_stat_activity` never shows more connections than
//! the global cap nor more of one tenant's login than the per-tenant cap; with the budget held,
//! one more checkout gives up with `PoolExhausted`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::future::join_all;
use tenant_manager::core::pool::PoolConfig;
use tenant_manager::postgres::sqlx::{self, AssertSqlSafe, Connection, PgConnection};
use tenant_manager::postgres::{DerivedCredentials, PgTenantConnector, ServerMap, quote_ident};
use tenant_manager::{Error, Isolation, NewTenant, Placement, Secret, ServerId, Tenant};
use tenant_manager::{TenantSlug, TenantStatus};
use tenant_manager_test_support::{TestDatabase, unique_suffix};

const MAX_TOTAL: i64 = 3;
const MAX_PER_TENANT: i64 = 2;

/// Login roles this test created, dropped when it ends (also when it fails).
struct Roles {
    url: String,
    names: Vec<String>,
}

impl Drop for Roles {
    fn drop(&mut self) {
        let (url, names) = (self.url.clone(), std::mem::take(&mut self.names));
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            runtime.expect("runtime").block_on(async move {
                let mut admin = PgConnection::connect(&url).await.expect("admin");
                for role in names {
                    let sql = format!("DROP ROLE IF EXISTS {}", quote_ident(&role));
                    let _ = sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut admin).await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// Database tenants placed in `db`, each with its own login role.
async fn tenants(
    db: &TestDatabase,
    admin: &mut PgConnection,
    roles: &mut Roles,
    n: usize,
) -> Vec<Tenant> {
    let suffix = unique_suffix();
    let mut tenants = Vec::new();
    for i in 0..n {
        let slug = TenantSlug::new(format!("budget_{suffix}_{i}")).expect("slug");
        let placement = Placement {
            server: ServerId::default_server(),
            database: db.name().to_owned(),
            schema: None,
        };
        let new = NewTenant::new(slug.clone(), slug.as_str(), Isolation::Database).expect("new");
        let mut tenant = new
            .with_placement(placement)
            .into_tenant(time::OffsetDateTime::now_utc());
        tenant.status = TenantStatus::Active;
        let role = tenant.role_name().expect("role");
        roles.names.push(role.clone());
        let sql = format!("CREATE ROLE {} LOGIN", quote_ident(&role));
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut *admin)
            .await
            .expect("role");
        tenants.push(tenant);
    }
    tenants
}

/// (all connections, the most of one login) of `app` now.
async fn counts(admin: &mut PgConnection, app: &str) -> (i64, i64) {
    sqlx::query_as(
        "SELECT coalesce(sum(n), 0)::bigint, coalesce(max(n), 0) FROM (SELECT count(*) AS n \
         FROM pg_stat_activity WHERE application_name = $1 GROUP BY usename) per_login",
    )
    .bind(app)
    .fetch_one(admin)
    .await
    .expect("pg_stat_activity")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_holds_against_pg_stat_activity() {
    let db = TestDatabase::create().await;
    let mut admin = PgConnection::connect(db.url()).await.expect("admin");
    let mut roles = Roles {
        url: db.admin_url().to_owned(),
        names: Vec::new(),
    };
    let tenants = tenants(&db, &mut admin, &mut roles, 4).await;
    let app = format!("tm_facade_budget_{}", unique_suffix());
    let credentials = DerivedCredentials::new(Secret::new("facade-tests-master-secret-0123456789"));
    let config = PoolConfig::default()
        .with_max_total(MAX_TOTAL as u32)
        .with_max_per_tenant(MAX_PER_TENANT as u32)
        .with_acquire_timeout(Duration::from_secs(5));
    let pools = PgTenantConnector::new(
        ServerMap::single(db.admin_url()).expect("servers"),
        Arc::new(credentials.expect("credentials")),
    )
    .with_application_name(&app)
    .into_pools(config)
    .expect("pools");

    // Sample pg_stat_activity while twelve checkouts, three per tenant, run and hold a while.
    let running = Arc::new(AtomicBool::new(true));
    let sampler = tokio::spawn({
        let (running, url, app) = (running.clone(), db.url().to_owned(), app.clone());
        async move {
            let mut conn = PgConnection::connect(&url).await.expect("sampler");
            let (mut peak_total, mut peak_login) = (0, 0);
            while running.load(Ordering::Acquire) {
                let (total, login) = counts(&mut conn, &app).await;
                (peak_total, peak_login) = (peak_total.max(total), peak_login.max(login));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (peak_total, peak_login)
        }
    });
    let checkouts = (0..12).map(|i| {
        let (pools, tenant) = (&pools, &tenants[i % tenants.len()]);
        async move {
            let mut conn = pools
                .acquire(tenant)
                .await
                .expect("checkout within the timeout");
            let (user,): (String,) = sqlx::query_as("SELECT current_user::text")
                .fetch_one(&mut *conn)
                .await
                .expect("query");
            assert_eq!(
                Some(user),
                tenant.role_name(),
                "scoped to its tenant's login"
            );
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    });
    join_all(checkouts).await;
    running.store(false, Ordering::Release);
    let (peak_total, peak_login) = sampler.await.expect("sampler");
    assert!(peak_total > 0, "the sampler saw the pools' connections");
    assert!(peak_total <= MAX_TOTAL, "{peak_total} connections open");
    assert!(peak_login <= MAX_PER_TENANT, "{peak_login} of one tenant");
    assert!(pools.stats().connections_opened >= 4, "{:?}", pools.stats());

    // The whole budget held: one more checkout waits its timeout, then gives up.
    let held = join_all([0, 0, 1].map(|i| pools.acquire(&tenants[i]))).await;
    assert!(held.iter().all(Result::is_ok));
    let refused = tokio::time::timeout(Duration::from_secs(30), pools.acquire(&tenants[2])).await;
    assert!(
        matches!(refused, Ok(Err(Error::PoolExhausted { .. }))),
        "{refused:?}"
    );
    assert!(counts(&mut admin, &app).await.0 <= MAX_TOTAL);
    drop(held);
    drop(pools);
    drop(roles);
}
