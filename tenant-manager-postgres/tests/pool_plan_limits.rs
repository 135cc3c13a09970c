//! A plan's Postgres session limits on schema tenants, set at checkout on the shared pool's
//! connection, on the real server: a statement beyond the plan's `statement_timeout` is
//! cancelled (SQLSTATE 57014), `SHOW work_mem` shows the plan's value, and neither reaches the
//! next tenant's checkout of the same pooled connection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod pool_support;

use std::time::Duration;

use sqlx::PgConnection;
use tenant_manager_core::{DbLimits, Plan, PlanBook, PlanCatalog, QuotaPolicy, Tenant};
use tenant_manager_postgres::{PgTenantConnector, PgTenantPools, ServerMap};

use common::Env;
use common::app::{app_login, env, keys, walled_pair};

/// The plan of tenant A: 50 ms statements, 8 MB of `work_mem`.
fn limited_plans() -> PlanBook {
    let limited = QuotaPolicy {
        db: DbLimits {
            statement_timeout_ms: Some(50),
            work_mem_kb: Some(8192),
            connection_limit: None,
        },
        ..QuotaPolicy::default()
    };
    PlanCatalog::new(QuotaPolicy::default())
        .with_plan(Plan::new("limited").expect("plan"), limited)
        .into()
}

/// One connection in all (both tenants share it): the app login behind the wall, or else the
/// server's admin login with the scope set by bound parameters.
fn pools(env: &Env, walled: bool, affinity: Duration) -> PgTenantPools {
    let connector = PgTenantConnector::new(
        ServerMap::single(env.db.admin_url()).expect("servers"),
        env.credentials.clone(),
    )
    .with_application_name(format!("tmtest_lim_{}", env.tag))
    .with_plan_limits(limited_plans());
    let connector = if walled {
        connector
            .with_app_login(app_login(env))
            .with_wall(keys(env, 1))
    } else {
        connector
    };
    connector
        .into_pools(pool_support::config(1, 1).with_scope_affinity(affinity))
        .expect("pools")
}

async fn scalar(conn: &mut PgConnection, sql: &'static str) -> String {
    sqlx::query_scalar(sql).fetch_one(conn).await.expect(sql)
}

async fn pid(conn: &mut PgConnection) -> i32 {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(conn)
        .await
        .expect("pid")
}

/// The SQLSTATE of a `pg_sleep` of `seconds`, `None` when it completed.
async fn sleep_state(conn: &mut PgConnection, seconds: f64) -> Option<String> {
    match sqlx::query("SELECT pg_catalog.pg_sleep($1)")
        .bind(seconds)
        .execute(conn)
        .await
    {
        Ok(_) => None,
        Err(sqlx::Error::Database(err)) => err.code().map(|c| c.into_owned()),
        Err(err) => panic!("pg_sleep: {err}"),
    }
}

/// A's checkout runs under its plan's limits; B's checkout of the very same backend right
/// after runs under the server's defaults.
async fn limits_stay_with_their_tenant(env: &Env, a: &Tenant, b: &Tenant, pools: &PgTenantPools) {
    let default_work_mem = {
        let mut admin = env.admin("postgres").await;
        scalar(&mut admin, "SHOW work_mem").await
    };
    assert_ne!(
        default_work_mem, "8MB",
        "the test needs another server default"
    );
    for round in 0..3 {
        let a_pid = {
            let mut conn = pools.acquire(a).await.expect("acquire a");
            assert_eq!(
                scalar(&mut conn, "SHOW work_mem").await,
                "8MB",
                "round {round}"
            );
            assert_eq!(scalar(&mut conn, "SHOW statement_timeout").await, "50ms");
            assert_eq!(
                sleep_state(&mut conn, 0.5).await.as_deref(),
                Some("57014"),
                "A's statement beyond its plan's timeout is cancelled"
            );
            pid(&mut conn).await
        };
        pool_support::settle(pools).await;
        let mut conn = pools.acquire(b).await.expect("acquire b");
        assert_eq!(pid(&mut conn).await, a_pid, "B gets A's pooled connection");
        assert_eq!(scalar(&mut conn, "SHOW work_mem").await, default_work_mem);
        assert_eq!(scalar(&mut conn, "SHOW statement_timeout").await, "0");
        assert_eq!(
            sleep_state(&mut conn, 0.2).await,
            None,
            "B's statement is not cut by A's timeout"
        );
        drop(conn);
        pool_support::settle(pools).await;
    }
}

async fn run(walled: bool, affinity: Duration) {
    let _heavy = pool_support::HEAVY.lock().await;
    let env = env().await;
    let (mut a, b) = walled_pair(&env).await;
    a.plan = Plan::new("limited").expect("plan");
    let pools = pools(&env, walled, affinity);
    limits_stay_with_their_tenant(&env, &a, &b, &pools).await;
    pools.close_all();
}

#[tokio::test]
async fn plan_limits_apply_behind_the_wall_and_are_reset_on_return() {
    run(true, Duration::ZERO).await;
}

#[tokio::test]
async fn plan_limits_are_cleared_when_another_tenant_takes_a_kept_connection() {
    run(true, Duration::from_secs(60)).await;
}

#[tokio::test]
async fn plan_limits_apply_without_the_wall() {
    run(false, Duration::ZERO).await;
}
