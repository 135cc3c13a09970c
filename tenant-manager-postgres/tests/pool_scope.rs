//! Tenant scope on shared Postgres pools never leaks: interleaved checkouts of schema and
//! shared tenants see only their own `search_path` and `app.tenant_id`, also after a query
//! that failed, a transaction left open, and cancelled futures.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod pool_support;

use std::time::Duration;

use pool_support::{PgFixture, config, settle};
use sqlx::{Connection, PgConnection};

use tenant_manager_core::{Isolation, Tenant};
use tenant_manager_postgres::PgTenantPools;

/// What a connection sees: `current_schema()`, `app.tenant_id`, and its table's row.
async fn seen(conn: &mut PgConnection) -> (Option<String>, String) {
    sqlx::query_as("SELECT current_schema()::text, current_setting('app.tenant_id', true)")
        .fetch_one(conn)
        .await
        .expect("scope query")
}

/// Asserts `conn` runs with `tenant`'s scope: its schema and id, and its own rows only.
async fn assert_scoped(conn: &mut PgConnection, tenant: &Tenant) {
    let (schema, id) = seen(conn).await;
    assert_eq!(id, tenant.id.to_string(), "app.tenant_id");
    match tenant.isolation {
        Isolation::Schema => {
            assert_eq!(schema.as_deref(), tenant.placement.schema.as_deref());
            let (name,): (String,) = sqlx::query_as("SELECT name FROM items")
                .fetch_one(&mut *conn)
                .await
                .expect("own items");
            assert_eq!(name, tenant.slug.as_str());
        }
        _ => assert_eq!(schema.as_deref(), Some("public")),
    }
}

/// Two schema tenants and two shared tenants in one database, and pools over it.
async fn setup(max_total: u32) -> (PgFixture, PgTenantPools, Vec<Tenant>) {
    let mut fixture = PgFixture::new().await;
    let mut tenants = fixture.tenants(2, Isolation::Schema).await;
    tenants.extend(fixture.tenants(2, Isolation::Shared).await);
    let pools = fixture.pools(config(max_total, 2));
    (fixture, pools, tenants)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn interleaved_checkouts_always_see_their_own_scope() {
    let (_fixture, pools, tenants) = setup(4).await;
    for round in 0..50 {
        let mut held = Vec::new();
        for tenant in tenants.iter().cycle().skip(round % 4).take(4) {
            let mut conn = pools.acquire(tenant).await.expect("checkout");
            assert_scoped(&mut conn, tenant).await;
            held.push(conn);
        }
        // Return in varying orders, so connections move between tenants.
        if round % 2 == 1 {
            held.reverse();
        }
        drop(held);
    }
    settle(&pools).await;
    let stats = pools.stats();
    assert_eq!(
        stats.pools, 1,
        "schema and shared tenants of one database share a pool"
    );
    assert!(stats.connections_opened <= 4, "connections were reused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scope_survives_failed_queries_and_transactions() {
    // One connection: every checkout reuses the previous tenant's connection.
    let (_fixture, pools, tenants) = setup(1).await;
    let (a, b) = (&tenants[0], &tenants[2]);
    // A query that fails.
    {
        let mut conn = pools.acquire(a).await.expect("a");
        assert!(sqlx::query("SELECT 1/0").execute(&mut *conn).await.is_err());
    }
    let mut conn = pools.acquire(b).await.expect("b");
    assert_scoped(&mut conn, b).await;
    drop(conn);
    // A transaction that fails and is dropped: rolled back before the reset.
    {
        let mut conn = pools.acquire(a).await.expect("a");
        let mut tx = conn.begin().await.expect("begin");
        assert!(
            sqlx::query("SELECT * FROM missing_table")
                .execute(&mut *tx)
                .await
                .is_err()
        );
    }
    let mut conn = pools.acquire(b).await.expect("b after a's transaction");
    assert_scoped(&mut conn, b).await;
    drop(conn);
    settle(&pools).await;
    assert_eq!(
        pools.stats().connections_opened,
        1,
        "the same connection served all"
    );
    // A transaction opened with a plain BEGIN and left open: the connection is discarded.
    {
        let mut conn = pools.acquire(a).await.expect("a");
        sqlx::raw_sql("BEGIN; SET LOCAL search_path TO public")
            .execute(&mut *conn)
            .await
            .expect("raw begin");
    }
    let mut conn = pools
        .acquire(b)
        .await
        .expect("b after a's open transaction");
    assert_scoped(&mut conn, b).await;
    drop(conn);
    settle(&pools).await;
    assert_eq!(
        pools.stats().connections_opened,
        2,
        "the connection left in a transaction was replaced"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelled_checkouts_and_queries_leave_no_scope_behind() {
    let (_fixture, pools, tenants) = setup(2).await;
    // Cancel checkouts at every point: before, during and after the scope is set.
    for round in 0..120_u64 {
        let tenant = &tenants[(round % 4) as usize];
        let budget = Duration::from_micros(round * 37 % 3_000);
        if let Ok(Ok(mut conn)) = tokio::time::timeout(budget, pools.acquire(tenant)).await {
            assert_scoped(&mut conn, tenant).await;
        }
    }
    // Cancel a query mid-flight: its connection is reset (after the query ends) or discarded.
    {
        let mut conn = pools.acquire(&tenants[0]).await.expect("a");
        let slow = sqlx::query("SELECT pg_sleep(0.3)").execute(&mut *conn);
        assert!(
            tokio::time::timeout(Duration::from_millis(20), slow)
                .await
                .is_err()
        );
    }
    for tenant in tenants.iter().cycle().take(16) {
        let mut conn = pools
            .acquire(tenant)
            .await
            .expect("checkout after cancellations");
        assert_scoped(&mut conn, tenant).await;
    }
    settle(&pools).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn row_level_security_sees_only_the_tenants_rows() {
    let mut fixture = PgFixture::new().await;
    let tenants = fixture.tenants(3, Isolation::Shared).await;
    let reader = fixture.shared_reader().await;
    let pools = fixture
        .connector()
        .with_shared_login(
            reader.clone(),
            tenant_manager_core::Secret::new("unused-under-trust"),
        )
        .into_pools(config(2, 2))
        .expect("pools");
    for tenant in tenants.iter().cycle().take(9) {
        let mut conn = pools.acquire(tenant).await.expect("checkout");
        let names: Vec<(String, String)> =
            sqlx::query_as("SELECT name, current_user::text FROM shared_items")
                .fetch_all(&mut *conn)
                .await
                .expect("rows");
        assert_eq!(names, vec![(tenant.slug.to_string(), reader.clone())]);
    }
    settle(&pools).await;
}
