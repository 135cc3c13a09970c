//! A plan's Postgres session limits where the login role cannot carry them, end to end on the
//! real server: a schema tenant's checkouts run under its plan's `statement_timeout` and
//! `work_mem` (set at checkout), and a database tenant registered on a plan with limits has
//! them on its login role at once, before any scheduled pass.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::pg::PgEnv;
use common::{ADMIN_KEY, Server, text};
use http::{Method, StatusCode};
use reference_server::http_client::Auth;
use serde_json::{Value, json};
use sqlx::Connection;

/// A plan's policy with Postgres limits `db`.
fn policy(db: Value) -> Value {
    json!({
        "rate": {"limit": 1000, "window_ms": 60000},
        "max_users": 10,
        "max_storage_bytes": 1u64 << 40,
        "max_connections": 2,
        "db": db,
    })
}

async fn put_plan(server: &Server, name: &str, body: &Value) {
    let r = server
        .send(
            Method::PUT,
            &format!("/api/admin/plans/{name}"),
            Auth::AdminKey(ADMIN_KEY),
            Some(body),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
}

/// The role's connection limit and its settings, as Postgres stores them.
async fn role_limits(env: &PgEnv, role: &str) -> (i32, Vec<String>) {
    let mut admin = env.admin("postgres").await;
    let limit: i32 = sqlx::query_scalar("SELECT rolconnlimit FROM pg_roles WHERE rolname = $1")
        .bind(role)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    let settings: Vec<String> = sqlx::query_scalar(
        "SELECT unnest(s.setconfig) FROM pg_db_role_setting s \
         JOIN pg_roles r ON r.oid = s.setrole WHERE r.rolname = $1 AND s.setdatabase = 0",
    )
    .bind(role)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    let _ = admin.close().await;
    (limit, settings)
}

/// A database tenant registered while the default plan has limits gets them on its role as
/// part of provisioning (the scheduled pass is off).
#[tokio::test]
async fn a_new_database_tenant_has_its_plans_limits_at_once() {
    let env = PgEnv::new().await;
    let server = env.server(&[("STORAGE_MEASURE_INTERVAL_MS", "0")]);
    put_plan(
        &server,
        "free",
        &policy(json!({"statement_timeout_ms": 700, "work_mem_kb": 3072, "connection_limit": 4})),
    )
    .await;
    env.register(&server, "fresh", "database").await;
    let role = format!("{}_t_{}", env.tag, env.slug("fresh"));
    let (limit, settings) = role_limits(&env, &role).await;
    assert_eq!(limit, 4, "CONNECTION LIMIT of {role}");
    assert!(
        settings.contains(&"statement_timeout=700".to_owned()),
        "{settings:?}"
    );
    assert!(
        settings.contains(&"work_mem=3072kB".to_owned()),
        "{settings:?}"
    );
}

/// A schema tenant (logged in through the shared app login) runs under its plan's limits:
/// `SHOW work_mem` in its checkout shows the plan's value, and a `pg_sleep` beyond the plan's
/// timeout is cancelled with `57014`.
#[cfg(feature = "attack-route")]
#[tokio::test]
async fn a_schema_tenants_checkouts_run_under_its_plans_limits() {
    let env = PgEnv::new().await;
    let server = env.server(&[("STORAGE_MEASURE_INTERVAL_MS", "0")]);
    put_plan(
        &server,
        "free",
        &policy(json!({"statement_timeout_ms": 300, "work_mem_kb": 8192})),
    )
    .await;
    let (_id, token, _) = env.register(&server, "narrow", "schema").await;
    let sql = |sql: &str| {
        let sql = sql.to_owned();
        let server = &server;
        let token = token.clone();
        async move {
            server
                .post(
                    "/api/test/sql",
                    Auth::Bearer(&token),
                    &json!({ "sql": sql }),
                )
                .await
        }
    };
    let r = sql("SHOW work_mem").await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    let shown: Value = r.json().unwrap();
    assert_eq!(shown["results"][0][0][0], "8MB", "{shown}");
    let r = sql("SELECT pg_sleep(5)").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", text(&r));
    let failed: Value = r.json().unwrap();
    assert_eq!(failed["error"]["sqlstate"], "57014", "{failed}");
}
