//! Plans and the storage quota in embedded mode (in-memory plan store, tenant data measured in
//! memory), and the JSON error, naming the field, of every bad input on the plan routes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{ADMIN_KEY, Server, assert_error, email, text};
use http::{Method, StatusCode};
use reference_server::http_client::{Auth, HttpResponse};
use serde_json::{Value, json};

fn policy(max_storage_bytes: u64) -> Value {
    json!({
        "rate": {"limit": 1000, "window_ms": 60000},
        "max_users": 10,
        "max_storage_bytes": max_storage_bytes,
        "max_connections": 2,
    })
}

async fn admin(server: &Server, method: Method, path: &str, body: Option<&Value>) -> HttpResponse {
    server
        .send(method, path, Auth::AdminKey(ADMIN_KEY), body)
        .await
}

/// Asserts `400 invalid_input` naming `field`.
fn assert_field(r: &HttpResponse, status: StatusCode, code: &str, field: &str) {
    assert_error(r, status, code);
    let body: Value = r.json().unwrap();
    assert_eq!(body["error"]["field"], field, "{}", text(r));
}

#[tokio::test]
async fn the_storage_quota_refuses_writes_and_a_larger_plan_lets_them_through() {
    let server = Server::start(&[("STORAGE_MEASURE_INTERVAL_MS", "0")]);
    let r = admin(
        &server,
        Method::PUT,
        "/api/admin/plans/tiny",
        Some(&policy(1)),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    let (id, token, _) = server.register("Tiny Co", &email("tiny")).await;
    let write = |name: &'static str| {
        let (server, token) = (&server, token.clone());
        async move {
            server
                .post(
                    "/api/companies",
                    Auth::Bearer(&token),
                    &json!({ "name": name }),
                )
                .await
        }
    };
    assert_eq!(write("First").await.status, StatusCode::CREATED);

    let r = admin(
        &server,
        Method::PUT,
        &format!("/api/admin/tenants/{id}/plan"),
        Some(&json!({"plan": "tiny"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    let r = admin(
        &server,
        Method::POST,
        &format!("/api/admin/tenants/{id}/usage/storage"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    let measured: Value = r.json().unwrap();
    assert!(
        measured["storage_bytes"].as_u64().unwrap() > 1,
        "{measured}"
    );

    let refused = write("Second").await;
    assert_field(
        &refused,
        StatusCode::FORBIDDEN,
        "quota_exceeded",
        "storage_bytes",
    );
    let r = server.get("/api/companies", Auth::Bearer(&token)).await;
    assert_eq!(r.status, StatusCode::OK, "reads go on: {}", text(&r));
    let current = server.get_json("/api/tenant", Auth::Bearer(&token)).await;
    assert_eq!(current["usage"]["storage_bytes"], measured["storage_bytes"]);

    // The default plan is known without being stored.
    let r = admin(
        &server,
        Method::PUT,
        &format!("/api/admin/tenants/{id}/plan"),
        Some(&json!({"plan": "free"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    assert_eq!(write("Third").await.status, StatusCode::CREATED);
}

/// A request and the error it must get: method, path, body, status, code, field.
type Case = (
    Method,
    String,
    Option<Value>,
    StatusCode,
    &'static str,
    &'static str,
);

#[tokio::test]
async fn bad_input_on_the_plan_routes_names_the_field() {
    let server = Server::start(&[("STORAGE_MEASURE_INTERVAL_MS", "0")]);
    let (id, _, _) = server.register("Field Co", &email("fields")).await;
    let plan_path = format!("/api/admin/tenants/{id}/plan");
    let bad_db = json!({
        "rate": {"limit": 1, "window_ms": 1000}, "max_users": 1, "max_storage_bytes": 1,
        "max_connections": 1, "db": {"work_mem_kb": 1}
    });
    let zero_connections = json!({
        "rate": {"limit": 1, "window_ms": 1000}, "max_users": 1, "max_storage_bytes": 1,
        "max_connections": 0
    });
    let zero_rate = json!({
        "rate": {"limit": 0, "window_ms": 1000}, "max_users": 1, "max_storage_bytes": 1,
        "max_connections": 1
    });
    let cases: Vec<Case> = vec![
        (
            Method::PUT,
            "/api/admin/plans/Bad!".into(),
            Some(policy(1)),
            StatusCode::BAD_REQUEST,
            "invalid_input",
            "plan",
        ),
        (
            Method::PUT,
            "/api/admin/plans/ok".into(),
            Some(bad_db),
            StatusCode::BAD_REQUEST,
            "invalid_input",
            "db.work_mem_kb",
        ),
        (
            Method::PUT,
            "/api/admin/plans/ok".into(),
            Some(zero_connections),
            StatusCode::BAD_REQUEST,
            "invalid_input",
            "max_connections",
        ),
        (
            Method::PUT,
            "/api/admin/plans/ok".into(),
            Some(zero_rate),
            StatusCode::BAD_REQUEST,
            "invalid_input",
            "rate_limit.limit",
        ),
        (
            Method::PUT,
            "/api/admin/plans/ok".into(),
            Some(json!({"max_users": 1})),
            StatusCode::BAD_REQUEST,
            "invalid_input",
            "body",
        ),
        (
            Method::GET,
            "/api/admin/plans/Bad!".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_input",
            "plan",
        ),
        (
            Method::GET,
            "/api/admin/plans/nosuch".into(),
            None,
            StatusCode::NOT_FOUND,
            "plan_not_found",
            "plan",
        ),
        (
            Method::PUT,
            plan_path.clone(),
            Some(json!({"plan": "nosuch"})),
            StatusCode::BAD_REQUEST,
            "invalid_input",
            "plan",
        ),
        (
            Method::PUT,
            plan_path.clone(),
            Some(json!({"plan": "Not A Plan"})),
            StatusCode::BAD_REQUEST,
            "invalid_input",
            "plan",
        ),
        (
            Method::PUT,
            plan_path.clone(),
            Some(json!({"plan": "free", "extra": 1})),
            StatusCode::BAD_REQUEST,
            "invalid_input",
            "body",
        ),
        (
            Method::PUT,
            "/api/admin/tenants/not-a-uuid/plan".into(),
            Some(json!({"plan": "free"})),
            StatusCode::BAD_REQUEST,
            "invalid_input",
            "path",
        ),
        (
            Method::POST,
            "/api/admin/tenants/not-a-uuid/usage/storage".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_input",
            "path",
        ),
    ];
    for (method, path, body, status, code, field) in cases {
        let r = admin(&server, method.clone(), &path, body.as_ref()).await;
        assert_eq!(r.status, status, "{method} {path} {body:?}: {}", text(&r));
        assert_field(&r, status, code, field);
    }
    let unknown = format!("/api/admin/tenants/{}/usage/storage", uuid::Uuid::new_v4());
    let r = admin(&server, Method::POST, &unknown, None).await;
    assert_error(&r, StatusCode::NOT_FOUND, "tenant_not_found");
    let r = server
        .send(Method::GET, "/api/admin/plans", Auth::None, None)
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "admin routes need the key"
    );
}
