//! End-to-end: the host jobs of the reference server in embedded mode. The admin API queues
//! the demo kind for a tenant and the in-process worker runs it; bad input is a JSON error
//! naming the field; jobs of a suspended tenant are refused; recurring schedules are stored,
//! listed and removed per tenant; the routes are in the OpenAPI document.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{ADMIN_KEY, Server, email, text};
use http::{Method, StatusCode};
use reference_server::http_client::{Auth, HttpResponse};
use serde_json::{Value, json};

fn field_error(r: &HttpResponse, status: StatusCode, field: &str) {
    let body: Value = r.json().unwrap_or_default();
    assert_eq!(r.status, status, "{}", text(r));
    assert_eq!(body["error"]["field"], field, "{}", text(r));
    assert!(body["error"]["code"].is_string(), "{}", text(r));
}

#[tokio::test]
async fn admins_queue_and_schedule_tenant_jobs_and_the_worker_runs_them() {
    let server = Server::start(&[]);
    let admin = Auth::AdminKey(ADMIN_KEY);
    let (id, _token, _) = server.register("Jobs", &email("jobs")).await;

    let kinds = server.get_json("/api/admin/jobs", admin).await;
    assert_eq!(kinds["kinds"], json!(["demo.count_companies"]), "{kinds}");

    let path = format!("/api/admin/tenants/{id}/jobs");
    let r = server
        .post(&path, admin, &json!({"kind": "demo.count_companies"}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", text(&r));
    let queued: Value = r.json().unwrap();
    assert_eq!(queued["tenant_id"], id.as_str());
    assert!(queued["job_id"].is_string());

    // The worker runs it: the queue drains (bounded wait; a hang detector, not a measurement).
    let mut drained = false;
    for _ in 0..100 {
        let stats = server.get_json("/api/admin/jobs", admin).await;
        if stats["ready"] == 0 && stats["in_flight"] == 0 {
            drained = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(drained, "the worker ran the job");
    let stats = server.get_json("/api/admin/jobs", admin).await;
    assert_eq!(stats["dead"], 0, "{stats}");

    // Bad input names its field.
    for (body, field) in [
        (json!({"kind": "no.such_kind"}), "kind"),
        (json!({"kind": "Bad Kind!"}), "kind"),
        (
            json!({"kind": "demo.count_companies", "delay_ms": u64::MAX}),
            "delay_ms",
        ),
        (json!({"kind": "demo.count_companies", "extra": 1}), "body"),
        (
            json!({"kind": "demo.count_companies", "payload": [1]}),
            "body",
        ),
    ] {
        field_error(
            &server.post(&path, admin, &body).await,
            StatusCode::BAD_REQUEST,
            field,
        );
    }
    let unknown = format!("/api/admin/tenants/{}/jobs", uuid::Uuid::now_v7());
    let r = server
        .post(&unknown, admin, &json!({"kind": "demo.count_companies"}))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", text(&r));
    let r = server
        .post(&path, Auth::None, &json!({"kind": "demo.count_companies"}))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // Schedules: stored, listed, replaced, removed; bad ones name their field.
    let schedule = format!("/api/admin/tenants/{id}/schedules/nightly");
    let body = json!({"kind": "demo.count_companies", "every_ms": 86_400_000});
    let r = server
        .send(Method::PUT, &schedule, admin, Some(&body))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    let listed = server
        .get_json(&format!("/api/admin/tenants/{id}/schedules"), admin)
        .await;
    assert_eq!(listed[0]["name"], "nightly", "{listed}");
    assert_eq!(listed[0]["every_ms"], 86_400_000);
    let r = server
        .send(
            Method::PUT,
            &schedule,
            admin,
            Some(&json!({"kind": "demo.count_companies", "every_ms": 5})),
        )
        .await;
    field_error(&r, StatusCode::BAD_REQUEST, "every_ms");
    let bad_name = format!("/api/admin/tenants/{id}/schedules/Bad%20Name");
    let r = server
        .send(Method::PUT, &bad_name, admin, Some(&body))
        .await;
    field_error(&r, StatusCode::BAD_REQUEST, "name");
    let r = server.send(Method::DELETE, &schedule, admin, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", text(&r));
    let r = server.send(Method::DELETE, &schedule, admin, None).await;
    field_error(&r, StatusCode::NOT_FOUND, "name");

    // A suspended tenant gets no new jobs.
    let r = server
        .post(
            &format!("/api/admin/tenants/{id}/suspend"),
            admin,
            &json!({}),
        )
        .await;
    assert!(r.status.is_success(), "{}", text(&r));
    let r = server
        .post(&path, admin, &json!({"kind": "demo.count_companies"}))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", text(&r));

    let doc = server.get_json("/api/openapi.json", Auth::None).await;
    for (route, method) in [
        ("/api/admin/tenants/{id}/jobs", "post"),
        ("/api/admin/jobs", "get"),
        ("/api/admin/tenants/{id}/schedules", "get"),
        ("/api/admin/tenants/{id}/schedules/{name}", "put"),
        ("/api/admin/tenants/{id}/schedules/{name}", "delete"),
    ] {
        assert!(doc["paths"][route][method].is_object(), "{route} {method}");
    }
}
