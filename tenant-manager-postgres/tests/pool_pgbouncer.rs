//! The pool engine through a private `pgbouncer` in front of the shared Postgres
//! (`docs/pgbouncer.md`): in session mode every checkout keeps its tenant's scope and the
//! row-level wall holds; in transaction mode a session-level scope set by one client's checkout
//! is what another client's checkout runs with: the leak the doc warns of, asserted.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod pool_support;

use std::str::FromStr;

use pool_support::{PgFixture, config};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, Row};
use tenant_manager_core::{Isolation, Secret, ServerId, Tenant};
use tenant_manager_postgres::{PgTenantPools, ServerMap};
use tenant_manager_test_support::{PoolMode, PrivatePgBouncer, postgres_admin_url};

/// A pgbouncer in `mode` with `pool_size` server connections in front of the shared Postgres,
/// the pools of two shared tenants through it (logged in as an unprivileged reader, so
/// row-level security applies), and the tenants.
async fn setup(
    mode: PoolMode,
    pool_size: u32,
) -> (
    PgFixture,
    PrivatePgBouncer,
    PgTenantPools,
    Vec<Tenant>,
    String,
) {
    let mut fixture = PgFixture::new().await;
    let tenants = fixture.tenants(2, Isolation::Shared).await;
    let reader = fixture.shared_reader().await;
    let upstream = PgConnectOptions::from_str(&postgres_admin_url().await).unwrap();
    let bouncer = PrivatePgBouncer::start(
        upstream.get_host(),
        upstream.get_port(),
        mode,
        pool_size,
        &[reader.as_str()],
    );
    // Statements unnamed: named ones do not survive a change of server connection.
    let options = PgConnectOptions::from_str(&bouncer.url(&reader, fixture.database()))
        .unwrap()
        .statement_cache_capacity(0);
    let servers = ServerMap::default().with_options(ServerId::default_server(), options, None);
    let pools = fixture
        .connector_via(servers)
        .with_shared_login(&reader, Secret::new("unused-with-trust"))
        .into_pools(config(4, 2))
        .unwrap();
    (fixture, bouncer, pools, tenants, reader)
}

/// The tenant setting and the shared rows a connection sees (simple protocol).
async fn seen(conn: &mut PgConnection) -> (String, Vec<String>) {
    let rows = sqlx::raw_sql(
        "SELECT current_setting('app.tenant_id', true), \
         COALESCE((SELECT string_agg(name, ',' ORDER BY name) FROM shared_items), '')",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let setting: Option<String> = rows[0].get(0);
    let names: String = rows[0].get(1);
    (
        setting.unwrap_or_default(),
        names
            .split(',')
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect(),
    )
}

fn own(tenant: &Tenant) -> (String, Vec<String>) {
    (tenant.id.to_string(), vec![tenant.slug.as_str().to_owned()])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_mode_keeps_each_checkout_in_its_tenants_scope() {
    let (_fixture, bouncer, pools, tenants, _) = setup(PoolMode::Session, 4).await;
    let (a, b) = (&tenants[0], &tenants[1]);
    for _ in 0..20 {
        // Both held at once, then returned in turn: connections move between tenants.
        let mut on_a = pools.acquire(a).await.unwrap();
        let mut on_b = pools.acquire(b).await.unwrap();
        assert_eq!(seen(&mut on_a).await, own(a));
        assert_eq!(seen(&mut on_b).await, own(b));
        drop(on_a);
        let mut again_b = pools.acquire(b).await.unwrap();
        assert_eq!(seen(&mut again_b).await, own(b));
        assert_eq!(seen(&mut on_b).await, own(b));
    }
    assert!(
        bouncer.log().contains("login attempt"),
        "the checkouts went through pgbouncer: {}",
        bouncer.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_mode_breaks_the_engines_checkouts() {
    // One server connection behind the pools' client connections.
    let (_fixture, _bouncer, pools, tenants, _) = setup(PoolMode::Transaction, 1).await;
    let (a, b) = (&tenants[0], &tenants[1]);
    let _on_a = pools.acquire(a).await.unwrap();
    // The scope statement is a named prepared statement of A's client connection, left on the
    // server connection; B's client connection prepares its own under the same name there.
    let err = pools.acquire(b).await.expect_err("B's checkout fails");
    assert!(
        format!("{err:?}").contains("42P05"),
        "prepared statement already exists: {err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_mode_leaks_a_session_scope_and_keeps_a_transaction_scope() {
    let (fixture, bouncer, _pools, tenants, reader) = setup(PoolMode::Transaction, 1).await;
    let (a, b) = (&tenants[0], &tenants[1]);
    let url = bouncer.url(&reader, fixture.database());
    let (mut client_a, mut client_b) = (
        PgConnection::connect(&url).await.unwrap(),
        PgConnection::connect(&url).await.unwrap(),
    );
    let scope = |tenant: &Tenant, local: bool| {
        format!(
            "SELECT set_config('app.tenant_id', '{}', {local})",
            tenant.id
        )
    };
    // The engine's scope is session-level (set once per checkout): through transaction
    // pooling it lands on whichever server connection runs the statement, and the next
    // client's scope replaces it under the first client's feet.
    sqlx::raw_sql(sqlx::AssertSqlSafe(scope(a, false)))
        .execute(&mut client_a)
        .await
        .unwrap();
    assert_eq!(seen(&mut client_a).await, own(a));
    sqlx::raw_sql(sqlx::AssertSqlSafe(scope(b, false)))
        .execute(&mut client_b)
        .await
        .unwrap();
    assert_eq!(seen(&mut client_a).await, own(b), "A runs with B's scope");

    // What would be needed: the scope set inside every transaction (SET LOCAL), which
    // transaction pooling keeps on one server connection and drops at its end.
    let in_transaction = |tenant: &Tenant| {
        format!(
            "BEGIN; {}; SELECT current_setting('app.tenant_id', true), \
             COALESCE((SELECT string_agg(name, ',' ORDER BY name) FROM shared_items), ''); \
             COMMIT",
            scope(tenant, true)
        )
    };
    for _ in 0..5 {
        for (client, tenant) in [(&mut client_a, a), (&mut client_b, b)] {
            let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(in_transaction(tenant)))
                .fetch_all(&mut *client)
                .await
                .unwrap();
            let row = rows.iter().find(|row| row.len() == 2).expect("the read");
            let setting: Option<String> = row.get(0);
            let names: String = row.get(1);
            assert_eq!(
                (setting.unwrap_or_default(), vec![names]),
                own(tenant),
                "a transaction-local scope holds"
            );
        }
    }
}
