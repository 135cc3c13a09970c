//! Read replicas against real processes: a private primary, a streaming replica of it
//! (`pg_basebackup -R`, another port), and the pool engine's `acquire_read` routing between
//! them by measured replay lag, with the tenant's scope and the same caps on both routes.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sqlx::{Connection, PgConnection};
use tenant_manager_core::pool::PoolConfig;
use tenant_manager_core::pool::fake::active_tenant;
use tenant_manager_core::{Error, Isolation, Placement, Secret, ServerId, Tenant};
use tenant_manager_postgres::{
    DerivedCredentials, PgTenantConnector, PgTenantPools, ReplicaPolicy, ServerMap, quote_literal,
    tenant_role,
};
use tenant_manager_test_support::PrivatePostgres;

/// The byte bound of the tests: far above an idle primary's drift, far below the pause's writes.
const MAX_LAG_BYTES: u64 = 256 * 1024;

/// A primary with a database `app` (a shared table under row-level security on
/// `app.tenant_id`, readable and writable by the login `reader`), tenants placed there, and a
/// streaming replica of it.
struct Cluster {
    primary: PrivatePostgres,
    replica: PrivatePostgres,
}

impl Cluster {
    async fn start(tenants: &[Tenant]) -> Self {
        let primary = PrivatePostgres::start();
        let mut admin = PgConnection::connect(&primary.admin_url()).await.unwrap();
        sqlx::raw_sql("CREATE DATABASE app")
            .execute(&mut admin)
            .await
            .unwrap();
        let mut ddl = String::from(
            "CREATE TABLE shared_items (tenant_id uuid NOT NULL, name text NOT NULL); \
             ALTER TABLE shared_items ENABLE ROW LEVEL SECURITY; \
             CREATE POLICY by_tenant ON shared_items USING \
             (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid); \
             CREATE ROLE reader LOGIN; GRANT SELECT, INSERT ON shared_items TO reader; \
             CREATE TABLE ballast (pad text); ",
        );
        for tenant in tenants {
            match tenant.isolation {
                Isolation::Database => {
                    let role = tenant_role(tenant).unwrap();
                    ddl.push_str(&format!("CREATE ROLE {} LOGIN; ", role.quoted()));
                }
                _ => ddl.push_str(&format!(
                    "INSERT INTO shared_items VALUES ({}, {}); ",
                    quote_literal(&tenant.id.to_string()),
                    quote_literal(tenant.slug.as_str()),
                )),
            }
        }
        let mut app = PgConnection::connect(&primary.url("app")).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(ddl))
            .execute(&mut app)
            .await
            .unwrap();
        let replica = primary.start_replica();
        Self { primary, replica }
    }

    fn pools(&self, policy: ReplicaPolicy, config: PoolConfig) -> PgTenantPools {
        let default = ServerId::default_server();
        let servers = ServerMap::single(&self.primary.admin_url())
            .unwrap()
            .with_replica(&default, &self.replica.admin_url())
            .unwrap();
        let credentials =
            DerivedCredentials::new(Secret::new("replica-tests-master-secret-0123456789")).unwrap();
        PgTenantConnector::new(servers, Arc::new(credentials))
            .with_shared_login("reader", Secret::new("unused-with-trust"))
            .with_application_name("tmtest_replicas")
            .with_replica_policy(policy)
            .into_pools(config)
            .unwrap()
    }

    async fn on_primary(&self, sql: &str) {
        let mut conn = PgConnection::connect(&self.primary.url("app"))
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut conn)
            .await
            .unwrap();
    }

    async fn on_replica(&self, sql: &str) {
        let mut conn = PgConnection::connect(&self.replica.url("app"))
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut conn)
            .await
            .unwrap();
    }
}

fn tenant(n: usize, isolation: Isolation) -> Tenant {
    let slug = format!("r{}{n}", tenant_manager_test_support::unique_suffix());
    let mut tenant = active_tenant(&slug, isolation).unwrap();
    tenant.placement = Placement {
        server: ServerId::default_server(),
        database: "app".to_owned(),
        schema: None,
    };
    tenant
}

/// The bound above; the monitor's own rounds an hour apart, so the test's explicit measures
/// ([`until`]) are the only ones after the first: what happens between two measures (a replica
/// stopped since) is the checkout's own doing.
fn policy() -> ReplicaPolicy {
    ReplicaPolicy::default()
        .with_max_lag_bytes(MAX_LAG_BYTES)
        .with_interval(Duration::from_secs(3600))
}

/// Polls `check` (measuring the replicas first) until it holds; panics after 600 tries.
async fn until<F, Fut>(pools: &PgTenantPools, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..600 {
        pools.connector().measure_replicas().await;
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never: {what}");
}

fn replica_serves(pools: &PgTenantPools) -> bool {
    pools
        .connector()
        .replica_status(&ServerId::default_server())[0]
        .1
}

/// Where a read checkout of `tenant` ran: whether in recovery (the replica), and the names
/// it sees in the shared table.
async fn read(pools: &PgTenantPools, tenant: &Tenant) -> (bool, Vec<String>) {
    let mut conn = pools.acquire_read(tenant).await.unwrap();
    let in_recovery: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM shared_items ORDER BY name")
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    (in_recovery, names)
}

/// The SQLSTATE of a write through a read checkout of `tenant`.
async fn write_refusal(pools: &PgTenantPools, tenant: &Tenant) -> Option<String> {
    let mut conn = pools.acquire_read(tenant).await.unwrap();
    let err = sqlx::query("INSERT INTO shared_items VALUES ($1, 'written')")
        .bind(tenant.id.as_uuid())
        .execute(&mut *conn)
        .await
        .err()?;
    err.as_database_error()
        .and_then(|e| e.code())
        .map(|code| code.into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_run_on_the_replica_within_the_bound_and_fall_back_to_the_primary() {
    let (a, b) = (tenant(0, Isolation::Shared), tenant(1, Isolation::Shared));
    let cluster = Cluster::start(&[a.clone(), b.clone()]).await;
    let pools = cluster.pools(policy(), PoolConfig::default().with_max_total(10));
    until(
        &pools,
        "the replica is measured within the bound",
        || async { replica_serves(&pools) },
    )
    .await;
    until(&pools, "the replica replayed the tenants' rows", || async {
        let (on_replica, names) = read(&pools, &a).await;
        on_replica && names.len() == 1
    })
    .await;

    // On the replica: each tenant sees its own rows only, and writes are refused.
    let expect = |t: &Tenant| vec![t.slug.as_str().to_owned()];
    assert_eq!(read(&pools, &a).await, (true, expect(&a)));
    assert_eq!(read(&pools, &b).await, (true, expect(&b)));
    let mut conn = pools.acquire_read(&a).await.unwrap();
    let tenant_setting: String = sqlx::query_scalar("SELECT current_setting('app.tenant_id')")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(tenant_setting, a.id.to_string());
    drop(conn);
    assert_eq!(write_refusal(&pools, &a).await.as_deref(), Some("25006"));
    // A read-write checkout still writes (on the primary).
    let mut conn = pools.acquire(&a).await.unwrap();
    sqlx::query("SELECT 1").execute(&mut *conn).await.unwrap();
    drop(conn);

    // Replay paused, the primary writes past the bound: reads fall back to the primary,
    // still scoped and still read-only.
    cluster.on_replica("SELECT pg_wal_replay_pause()").await;
    cluster
        .on_primary("INSERT INTO ballast SELECT repeat('x', 200) FROM generate_series(1, 5000)")
        .await;
    until(&pools, "the paused replica is out of the bound", || async {
        !replica_serves(&pools)
    })
    .await;
    let lag = pools
        .connector()
        .replica_status(&ServerId::default_server())[0]
        .0;
    assert!(lag > MAX_LAG_BYTES, "lag {lag}");
    assert_eq!(read(&pools, &a).await, (false, expect(&a)));
    assert_eq!(read(&pools, &b).await, (false, expect(&b)));
    assert_eq!(write_refusal(&pools, &a).await.as_deref(), Some("25006"));

    // Replay resumed: back on the replica.
    cluster.on_replica("SELECT pg_wal_replay_resume()").await;
    until(&pools, "the replica caught up", || async {
        replica_serves(&pools)
    })
    .await;
    assert_eq!(read(&pools, &a).await, (true, expect(&a)));

    // The replica stopped, not measured since: the next checkout (B's: A's last connection
    // there is kept with A's scope, and handed back to A with no statement at all) finds its
    // connections dead, takes the replica out of service and falls back; reads stay off it.
    cluster.replica.stop();
    assert!(replica_serves(&pools), "not measured since the stop");
    assert_eq!(read(&pools, &b).await, (false, expect(&b)));
    assert!(!replica_serves(&pools));
    assert_eq!(read(&pools, &a).await, (false, expect(&a)));
    pools.connector().measure_replicas().await;
    assert!(!replica_serves(&pools));
    assert_eq!(write_refusal(&pools, &b).await.as_deref(), Some("25006"));

    // Back: served there again.
    cluster.replica.start_again();
    until(
        &pools,
        "the restarted replica is measured again",
        || async { replica_serves(&pools) },
    )
    .await;
    until(
        &pools,
        "reads are served by the restarted replica",
        || async { read(&pools, &a).await.0 },
    )
    .await;
    assert_eq!(read(&pools, &a).await, (true, expect(&a)));
    assert_eq!(read(&pools, &b).await, (true, expect(&b)));
}

fn exhausted<T>(result: Result<T, Error>) -> bool {
    matches!(result, Err(Error::PoolExhausted { .. }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caps_hold_across_read_and_write_checkouts() {
    let shared = tenant(0, Isolation::Shared);
    let own = tenant(1, Isolation::Database);
    let third = tenant(2, Isolation::Shared);
    let cluster = Cluster::start(&[shared.clone(), own.clone(), third.clone()]).await;
    let config = PoolConfig::default()
        .with_max_total(4)
        .with_max_per_tenant(2)
        .with_acquire_timeout(Duration::from_millis(500));
    // The monitor measures often: its first round, racing the test's measure, may end after it
    // with the replica still catching up; its next rounds see it caught up.
    let pools = cluster.pools(policy().with_interval(Duration::from_millis(100)), config);
    until(
        &pools,
        "the replica is measured within the bound",
        || async { replica_serves(&pools) },
    )
    .await;

    // A tenant of a shared pool: one write and one read checkout spend its cap of 2.
    let write = pools.acquire(&shared).await.unwrap();
    let read_one = pools.acquire_read(&shared).await.unwrap();
    assert_eq!(pools.tenant_in_use(shared.id), 2);
    assert!(exhausted(pools.acquire_read(&shared).await));
    assert!(exhausted(pools.acquire(&shared).await));

    // A tenant with its own database and role: its idle read-write connections give their
    // share of its cap to its reads (on the replica, as its own role), never more than 2.
    let (w1, w2) = (
        pools.acquire(&own).await.unwrap(),
        pools.acquire(&own).await.unwrap(),
    );
    drop((w1, w2));
    let mut r1 = pools.acquire_read(&own).await.unwrap();
    let (user, in_recovery): (String, bool) =
        sqlx::query_as("SELECT current_user::text, pg_is_in_recovery()")
            .fetch_one(&mut *r1)
            .await
            .unwrap();
    assert_eq!(user, tenant_role(&own).unwrap().as_str());
    assert!(in_recovery);
    let r2 = pools.acquire_read(&own).await.unwrap();
    assert_eq!(pools.tenant_in_use(own.id), 2);
    assert!(exhausted(pools.acquire(&own).await));
    assert!(exhausted(pools.acquire_read(&own).await));

    // The global budget of 4 is spent by the two tenants' checkouts: a third tenant waits.
    let stats = pools.stats();
    assert!(stats.open <= 4, "{stats:?}");
    assert!(exhausted(pools.acquire_read(&third).await));
    drop((write, read_one, r1, r2));
    let mut conn = pools.acquire_read(&third).await.unwrap();
    let (names,): (Vec<String>,) = sqlx::query_as("SELECT array_agg(name) FROM shared_items")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(names, vec![third.slug.as_str().to_owned()]);
    drop(conn);
    assert!(pools.stats().open <= 4);
}
