//! Plans and quotas that bite, end to end on the real server: plans kept in the registry and
//! edited through the admin API and `tenant-cli`, a tenant's plan change applied on its next
//! request on another instance (Redis cache), storage measured and writes over the quota
//! refused with `403 quota_exceeded` (field `storage_bytes`) while reads go on, and the plan's
//! Postgres limits on the tenant's login role, checked in Postgres itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::pg::PgEnv;
use common::{ADMIN_KEY, Server, assert_error, text};
use http::{Method, StatusCode};
use reference_server::http_client::{Auth, HttpResponse};
use serde_json::{Value, json};
use sqlx::Connection;

/// How long a change may take to reach another instance: a hang limit, not a measurement.
const SETTLE: Duration = Duration::from_secs(10);

/// A plan's policy with `max_storage_bytes` and optional Postgres limits.
fn policy(max_storage_bytes: u64, db: Value) -> Value {
    json!({
        "rate": {"limit": 1000, "window_ms": 60000},
        "max_users": 10,
        "max_storage_bytes": max_storage_bytes,
        "max_connections": 2,
        "db": db,
    })
}

async fn put(server: &Server, path: &str, body: &Value) -> HttpResponse {
    server
        .send(Method::PUT, path, Auth::AdminKey(ADMIN_KEY), Some(body))
        .await
}

async fn put_plan(server: &Server, name: &str, body: &Value) {
    let r = put(server, &format!("/api/admin/plans/{name}"), body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
}

async fn set_plan(server: &Server, tenant: &str, plan: &str) -> Value {
    let r = put(
        server,
        &format!("/api/admin/tenants/{tenant}/plan"),
        &json!({ "plan": plan }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    r.json().unwrap()
}

async fn measure(server: &Server, tenant: &str) -> Value {
    let r = server
        .post(
            &format!("/api/admin/tenants/{tenant}/usage/storage"),
            Auth::AdminKey(ADMIN_KEY),
            &json!(null),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    r.json().unwrap()
}

async fn add_company(server: &Server, token: &str, name: &str) -> HttpResponse {
    server
        .post(
            "/api/companies",
            Auth::Bearer(token),
            &json!({ "name": name }),
        )
        .await
}

/// Writes a company through `server` until the answer has `status`, for at most [`SETTLE`].
async fn write_until(server: &Server, token: &str, status: StatusCode) -> HttpResponse {
    let deadline = Instant::now() + SETTLE;
    loop {
        let r = add_company(server, token, "Probe").await;
        if r.status == status || Instant::now() >= deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_storage_refusal(r: &HttpResponse) {
    assert_error(r, StatusCode::FORBIDDEN, "quota_exceeded");
    let body: Value = r.json().unwrap();
    assert_eq!(body["error"]["field"], "storage_bytes", "{}", text(r));
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

fn servers(env: &PgEnv) -> (Server, Server) {
    let overrides = [
        ("PLANS_REFRESH_MS", "200"),
        ("STORAGE_MEASURE_INTERVAL_MS", "0"),
    ];
    (env.server(&overrides), env.server(&overrides))
}

#[tokio::test]
async fn a_plan_change_through_one_instance_bites_on_the_next_write_through_another() {
    let env = PgEnv::new().await;
    let (one, two) = servers(&env);
    let limits = json!({"statement_timeout_ms": 300, "work_mem_kb": 2048, "connection_limit": 5});
    put_plan(&one, "tiny", &policy(1, limits)).await;
    put_plan(&one, "roomy", &policy(1 << 40, json!(null))).await;
    let listed = one
        .get_json("/api/admin/plans", Auth::AdminKey(ADMIN_KEY))
        .await;
    let names: Vec<&str> = listed["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["roomy", "tiny"], "{listed}");

    let (id, token, _) = env.register(&one, "quota", "database").await;
    let role = format!("{}_t_{}", env.tag, env.slug("quota"));
    // Instance two caches the tenant on the free plan.
    let before = two.get_json("/api/tenant", Auth::Bearer(&token)).await;
    assert_eq!(before["plan"], "free", "{before}");
    assert_eq!(
        add_company(&two, &token, "Before").await.status,
        StatusCode::CREATED
    );

    let moved = set_plan(&one, &id, "tiny").await;
    assert_eq!(moved["plan"], "tiny");
    let (limit, settings) = role_limits(&env, &role).await;
    assert_eq!(limit, 5, "CONNECTION LIMIT of {role}");
    assert!(
        settings.contains(&"statement_timeout=300".to_owned()),
        "{settings:?}"
    );
    assert!(
        settings.contains(&"work_mem=2048kB".to_owned()),
        "{settings:?}"
    );

    let measured = measure(&one, &id).await;
    let bytes = measured["storage_bytes"].as_u64().unwrap();
    assert!(bytes > 1, "a database takes pages: {measured}");
    assert_eq!(measured["max_storage_bytes"], 1);

    // Instance two: writes refused, reads served, usage shown.
    let refused = write_until(&two, &token, StatusCode::FORBIDDEN).await;
    assert_storage_refusal(&refused);
    let r = two.get("/api/companies", Auth::Bearer(&token)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    let current = two.get_json("/api/tenant", Auth::Bearer(&token)).await;
    assert_eq!(current["plan"], "tiny", "{current}");
    assert_eq!(current["usage"]["storage_bytes"], bytes, "{current}");
    assert_eq!(current["quota"]["max_storage_bytes"], 1, "{current}");

    // A larger plan: the next write goes through, and the role loses the tiny plan's limits.
    set_plan(&one, &id, "roomy").await;
    let r = write_until(&two, &token, StatusCode::CREATED).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
    assert_eq!(role_limits(&env, &role).await, (-1, Vec::new()));

    // A plan edited by tenant-cli reaches the running instances within PLANS_REFRESH_MS.
    let out = env
        .cli(&[
            "plans",
            "put",
            "roomy",
            "--policy",
            &policy(1, json!(null)).to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for server in [&one, &two] {
        assert_storage_refusal(&write_until(server, &token, StatusCode::FORBIDDEN).await);
    }

    // tenant-cli moves the tenant back to the default plan; an unknown plan is refused.
    let out = env
        .cli(&["tenants", "set-plan", &env.slug("quota"), "nosuch"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("plan"));
    let out = env
        .cli(&["tenants", "set-plan", &env.slug("quota"), "free"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = write_until(&two, &token, StatusCode::CREATED).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
    let out = env.cli(&["plans", "list"]).output().unwrap();
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        listed["plans"][0]["policy"]["max_storage_bytes"], 1,
        "{listed}"
    );
}

#[tokio::test]
async fn schema_and_shared_tenants_are_measured_by_their_own_storage() {
    let env = PgEnv::new().await;
    let server = env.server(&[("STORAGE_MEASURE_INTERVAL_MS", "0")]);
    let mut sizes = Vec::new();
    for isolation in ["schema", "shared"] {
        let small = env
            .org_with_companies(&server, &format!("{isolation}_small"), isolation, &["A"])
            .await;
        let names: Vec<String> = (0..200).map(|i| format!("Company {i:04}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let big = env
            .org_with_companies(&server, &format!("{isolation}_big"), isolation, &refs)
            .await;
        let small_bytes = measure(&server, &small.id).await["storage_bytes"]
            .as_u64()
            .unwrap();
        let big_bytes = measure(&server, &big.id).await["storage_bytes"]
            .as_u64()
            .unwrap();
        assert!(small_bytes > 0, "{isolation}: {small_bytes}");
        assert!(
            big_bytes > small_bytes,
            "{isolation}: 200 companies ({big_bytes}) outweigh one ({small_bytes})"
        );
        sizes.push((isolation, small_bytes, big_bytes));
    }
    // A shared tenant is charged for its rows only: one company is far below a page.
    let (_, shared_small, _) = sizes[1];
    assert!(shared_small < 8192, "{sizes:?}");
}

/// The plan's `statement_timeout` reaches the tenant's pooled, scoped sessions: `SHOW` through
/// `POST /api/test/sql` reads it, and a longer statement is cancelled (`57014`).
#[cfg(feature = "attack-route")]
#[tokio::test]
async fn a_database_tenants_statements_are_cancelled_after_the_plans_timeout() {
    let env = PgEnv::new().await;
    let server = env.server(&[("STORAGE_MEASURE_INTERVAL_MS", "0")]);
    put_plan(
        &server,
        "strict",
        &policy(1 << 40, json!({"statement_timeout_ms": 300})),
    )
    .await;
    let (id, token, _) = env.register(&server, "strict", "database").await;
    set_plan(&server, &id, "strict").await;
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
    let r = sql("SHOW statement_timeout").await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    let shown: Value = r.json().unwrap();
    assert_eq!(shown["results"][0][0][0], "300ms", "{shown}");
    let r = sql("SELECT pg_sleep(5)").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", text(&r));
    let failed: Value = r.json().unwrap();
    assert_eq!(failed["error"]["sqlstate"], "57014", "{failed}");
}
