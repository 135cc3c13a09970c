//! End-to-end check of the app login: `tenant-cli migrate global` creates it unprivileged, and
//! the real server's pools shared by schema- and row-isolated tenants log in as it, never as
//! the admin login, behind the tenant wall (a member of no tenant role).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::pg::PgEnv;
use common::{Server, text};
use http::StatusCode;
use reference_server::http_client::Auth;
use serde_json::{Value, json};
use sqlx::Connection;

/// Registers `<tag>_<name>` with `isolation`; returns the owner's token.
async fn register(server: &Server, env: &PgEnv, name: &str, isolation: &str) -> String {
    let (_, token, answer) = env.register(server, name, isolation).await;
    assert_eq!(answer["tenant"]["isolation"], isolation);
    token
}

#[tokio::test]
async fn shared_pools_log_in_as_the_unprivileged_app_login() {
    let env = PgEnv::new().await;
    let app = format!("{}_app", env.tag);

    let out = env.cli(&["migrate", "global"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("app login ready"));
    let mut admin = env.admin("postgres").await;
    let attributes: (bool, bool, bool, bool, bool) = sqlx::query_as(
        "SELECT rolsuper, rolbypassrls, rolinherit, rolcreaterole, rolcanlogin \
         FROM pg_roles WHERE rolname = $1",
    )
    .bind(&app)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(attributes, (false, false, false, false, true));

    let server = env.server(&[]);
    for (name, isolation) in [("login_schema", "schema"), ("login_shared", "shared")] {
        let token = register(&server, &env, name, isolation).await;
        let r = server
            .post(
                "/api/companies",
                Auth::Bearer(&token),
                &json!({"name": "Initech"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
        let list: Value = server
            .get("/api/companies", Auth::Bearer(&token))
            .await
            .json()
            .unwrap();
        assert_eq!(
            list["items"].as_array().map(Vec::len),
            Some(1),
            "{isolation}"
        );
    }

    // Behind the wall the app login is a member of no tenant role (it proves each checkout's
    // tenant instead); the pool's sessions in the shared database (kept idle by the pool) are
    // the app login's.
    let role = format!("{}_t_{}", env.tag, env.slug("login_schema"));
    let granted: bool = sqlx::query_scalar("SELECT pg_has_role($1, $2, 'MEMBER')")
        .bind(&app)
        .bind(&role)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert!(!granted);
    let users: Vec<String> = sqlx::query_scalar(
        "SELECT usename::text FROM pg_stat_activity \
         WHERE datname = $1 AND application_name = 'reference-server'",
    )
    .bind(format!("{}_shared", env.tag))
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(
        !users.is_empty(),
        "the shared pool keeps an idle connection"
    );
    assert!(users.iter().all(|u| *u == app), "{users:?}");
    let _ = admin.close().await;
}
