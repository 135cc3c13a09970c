//! Tenant affinity on a shared pool behind the wall, on the real server: a repeated request of
//! one tenant costs Postgres one transaction (counted in `pg_stat_database`), and what a
//! tenant leaves on a session (temporary tables, settings, advisory locks, listeners, prepared
//! statements, an open or failed transaction, a cancelled query, a dead backend) is only ever
//! seen by that tenant.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod pool_support;

use std::time::Duration;

use sqlx::{Connection, PgConnection};
use tenant_manager_core::Tenant;
use tenant_manager_core::pool::PoolConfig;
use tenant_manager_postgres::{PgTenantConnector, PgTenantPools, ServerMap};

use common::Env;
use common::app::{app_login, env, keys, walled_pair};

const LIST: &str = "SELECT name FROM companies ORDER BY name";

fn pools(env: &Env, config: PoolConfig) -> PgTenantPools {
    PgTenantConnector::new(
        ServerMap::single(env.db.admin_url()).expect("servers"),
        env.credentials.clone(),
    )
    .with_app_login(app_login(env))
    .with_wall(keys(env, 1))
    .with_application_name(format!("tmtest_aff_{}", env.tag))
    .into_pools(config)
    .expect("pools")
}

/// Two schema tenants with rows, behind the wall, in one database.
async fn world() -> (Env, Tenant, Tenant) {
    let env = env().await;
    let (a, b) = walled_pair(&env).await;
    (env, a, b)
}

async fn list(conn: &mut PgConnection) -> Vec<String> {
    sqlx::query_scalar(LIST)
        .fetch_all(conn)
        .await
        .expect("list")
}

async fn pid(conn: &mut PgConnection) -> i32 {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(conn)
        .await
        .expect("pid")
}

/// Committed plus rolled-back transactions of `database`, as published so far.
async fn transactions(admin: &mut PgConnection, database: &str) -> i64 {
    sqlx::raw_sql("SELECT pg_stat_clear_snapshot()")
        .execute(&mut *admin)
        .await
        .expect("clear snapshot");
    sqlx::query_scalar(
        "SELECT (xact_commit + xact_rollback)::int8 FROM pg_stat_database WHERE datname = $1",
    )
    .bind(database)
    .fetch_one(admin)
    .await
    .expect("pg_stat_database")
}

/// Sessions on `database`.
async fn sessions_on(admin: &mut PgConnection, database: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = $1")
        .bind(database)
        .fetch_one(admin)
        .await
        .expect("pg_stat_activity")
}

/// Waits until no session is connected to `database`.
async fn quiet(admin: &mut PgConnection, database: &str) {
    for _ in 0..300 {
        if sessions_on(admin, database).await == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("sessions on {database} did not end");
}

/// Transactions `database` counted for `requests` checkouts of `tenant`, each running the
/// list query once. Every other session of the database is gone before and after (a backend
/// publishes its counts when it exits), so the delta is the pool's alone.
async fn transactions_per_request(
    env: &Env,
    tenant: &Tenant,
    config: PoolConfig,
    requests: u32,
) -> f64 {
    let database = tenant.placement.database.clone();
    let mut admin = env.admin("postgres").await;
    quiet(&mut admin, &database).await;
    let before = transactions(&mut admin, &database).await;
    let pools = pools(env, config);
    for _ in 0..requests {
        let mut conn = pools.acquire(tenant).await.expect("acquire");
        assert_eq!(list(&mut conn).await.len(), 2);
    }
    pool_support::settle(&pools).await;
    pools.close_all();
    drop(pools);
    quiet(&mut admin, &database).await;
    let after = transactions(&mut admin, &database).await;
    let _ = admin.close().await;
    (after - before) as f64 / f64::from(requests)
}

#[tokio::test]
async fn a_repeated_request_of_one_tenant_costs_one_transaction() {
    let _heavy = pool_support::HEAVY.lock().await;
    let (env, a, _b) = world().await;
    let with = transactions_per_request(&env, &a, pool_support::config(2, 2), 400).await;
    let without = transactions_per_request(
        &env,
        &a,
        pool_support::config(2, 2).with_scope_affinity(Duration::ZERO),
        400,
    )
    .await;
    println!("transactions per request: with affinity {with:.3}, without {without:.3}");
    assert!(
        with <= 1.2,
        "with affinity: {with:.3} transactions per request"
    );
    // The count sees the scope and the reset: without affinity each request pays for both.
    assert!(without >= 2.9, "without affinity: {without:.3} per request");
}

#[tokio::test]
async fn what_a_tenant_leaves_on_a_session_reaches_only_that_tenant() {
    let (env, a, b) = world().await;
    let pools = pools(&env, pool_support::config(1, 1));
    let mut conn = pools.acquire(&a).await.expect("a");
    let first = pid(&mut conn).await;
    sqlx::raw_sql(
        "CREATE TEMP TABLE companies (name text); INSERT INTO companies VALUES ('a-temp'); \
         SET search_path = pg_temp, public; SET statement_timeout = 4321; \
         SELECT pg_advisory_lock(4711); LISTEN affinity_channel",
    )
    .execute(&mut *conn)
    .await
    .expect("a leaves state");
    drop(conn);
    pool_support::settle(&pools).await;

    // A again: the same session, untouched (nothing was sent), A's own state still there.
    let mut conn = pools.acquire(&a).await.expect("a again");
    assert_eq!(pid(&mut conn).await, first);
    assert_eq!(list(&mut conn).await, ["a-temp"]);
    assert_eq!(pools.stats().scope_reused, 1);
    drop(conn);
    pool_support::settle(&pools).await;

    // B on the same session: every trace of A is gone, B sees its rows only.
    let mut conn = pools.acquire(&b).await.expect("b");
    assert_eq!(pid(&mut conn).await, first, "switched, not replaced");
    assert_eq!(list(&mut conn).await, ["Hooli"]);
    let (temp, timeout, locks, channels): (Option<String>, String, i64, i64) = sqlx::query_as(
        "SELECT to_regclass('pg_temp.companies')::text, current_setting('statement_timeout'), \
         (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()), \
         (SELECT count(*) FROM pg_listening_channels())",
    )
    .fetch_one(&mut *conn)
    .await
    .expect("session state");
    assert_eq!(temp, None, "A's temporary table");
    assert_ne!(timeout, "4321ms", "A's setting");
    assert_eq!((locks, channels), (0, 0), "A's advisory lock and listener");
    assert_eq!(pools.stats().scope_switched, 1);
    drop(conn);
    pools.close_all();
}

#[tokio::test]
async fn a_transaction_left_open_or_failed_is_never_carried_on() {
    let (env, a, _b) = world().await;
    let pools = pools(&env, pool_support::config(1, 1));
    for (case, sql) in [
        (
            "open",
            "BEGIN; INSERT INTO companies VALUES ('Uncommitted')",
        ),
        ("failed", "BEGIN; SELECT 1/0"),
    ] {
        let mut conn = pools.acquire(&a).await.expect("a");
        let first = pid(&mut conn).await;
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut *conn)
            .await;
        drop(conn);
        pool_support::settle(&pools).await;
        let mut conn = pools.acquire(&a).await.expect("a again");
        assert_ne!(
            pid(&mut conn).await,
            first,
            "{case}: the session was discarded"
        );
        // Simple protocol: a statement outside a transaction block starts its own.
        let outside: bool = sqlx::raw_sql("SELECT statement_timestamp() = transaction_timestamp()")
            .fetch_one(&mut *conn)
            .await
            .and_then(|row| sqlx::Row::try_get(&row, 0))
            .expect("transaction check");
        assert!(
            outside,
            "{case}: the next checkout runs outside any transaction"
        );
        assert_eq!(list(&mut conn).await, ["Globex", "Initech"], "{case}");
        drop(conn);
        pool_support::settle(&pools).await;
    }
    pools.close_all();
}

#[tokio::test]
async fn a_cancelled_query_is_drained_before_the_connection_serves_again() {
    let (env, a, b) = world().await;
    let pools = pools(&env, pool_support::config(1, 1));
    let mut conn = pools.acquire(&a).await.expect("a");
    let slow = tokio::time::timeout(
        Duration::from_millis(100),
        sqlx::raw_sql("SELECT pg_sleep(1); SELECT 'late'").execute(&mut *conn),
    )
    .await;
    assert!(slow.is_err(), "cancelled mid-flight");
    drop(conn);
    pool_support::settle(&pools).await;
    for (tenant, names) in [(&a, vec!["Globex", "Initech"]), (&b, vec!["Hooli"])] {
        let mut conn = pools.acquire(tenant).await.expect("checkout");
        assert_eq!(list(&mut conn).await, names);
    }
    assert_eq!(
        pools.stats().scope_reused,
        0,
        "a session owing replies is not kept"
    );
    pools.close_all();
}

#[tokio::test]
async fn a_prepared_statement_from_sql_makes_the_switch_discard_the_session() {
    let (env, a, b) = world().await;
    let pools = pools(&env, pool_support::config(1, 1));
    let mut conn = pools.acquire(&a).await.expect("a");
    let first = pid(&mut conn).await;
    sqlx::raw_sql("PREPARE trap AS SELECT 1")
        .execute(&mut *conn)
        .await
        .expect("prepare");
    drop(conn);
    pool_support::settle(&pools).await;
    let mut conn = pools.acquire(&b).await.expect("b");
    assert_ne!(
        pid(&mut conn).await,
        first,
        "the switch refused the session"
    );
    assert_eq!(list(&mut conn).await, ["Hooli"]);
    pools.close_all();
}

#[tokio::test]
async fn a_kept_session_that_died_fails_its_own_tenant_once_and_no_one_else() {
    let (env, a, b) = world().await;
    let pools = pools(&env, pool_support::config(1, 1));
    let mut conn = pools.acquire(&a).await.expect("a");
    let first = pid(&mut conn).await;
    drop(conn);
    pool_support::settle(&pools).await;
    terminate(&env, first).await;
    // B's switch fails on the dead session; the engine retries on a new one.
    let mut conn = pools.acquire(&b).await.expect("b");
    assert_ne!(pid(&mut conn).await, first);
    assert_eq!(list(&mut conn).await, ["Hooli"]);
    drop(conn);
    pools.close_all();

    // A, reusing its own kept session after the server lost it: its statement fails (no
    // statement checks a kept session first), the session is discarded, the next works.
    let pools = pools_for_dead_kept(&env, &a).await;
    let mut conn = pools.acquire(&a).await.expect("a");
    assert!(sqlx::query(LIST).fetch_all(&mut *conn).await.is_err());
    drop(conn);
    pool_support::settle(&pools).await;
    let mut conn = pools.acquire(&a).await.expect("a again");
    assert_eq!(list(&mut conn).await, ["Globex", "Initech"]);
    pools.close_all();
}

/// A pool whose one idle session, kept with `tenant`'s scope, has been terminated.
async fn pools_for_dead_kept(env: &Env, tenant: &Tenant) -> PgTenantPools {
    let pools = pools(env, pool_support::config(1, 1));
    let mut conn = pools.acquire(tenant).await.expect("checkout");
    let kept = pid(&mut conn).await;
    drop(conn);
    pool_support::settle(&pools).await;
    terminate(env, kept).await;
    pools
}

/// Ends the backend `pid` from outside, as a server restart would.
async fn terminate(env: &Env, pid: i32) {
    let mut admin = env.admin("postgres").await;
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .execute(&mut admin)
        .await
        .expect("terminate");
    let _ = admin.close().await;
}
