//! End-to-end tests of the real `reference-server` binary in embedded mode (no
//! `GLOBAL_DATABASE_URL`): the guide's smoke tests, tenant isolation, rate limits, the admin
//! API, async provisioning, metrics, configuration errors and shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::isolation::{Org, assert_b_cannot_reach_a};
use common::{
    ADMIN_KEY, Server, TempDir, assert_error, assert_guide_series, assert_rate_limited, code,
    email, text,
};
use http::{Method, StatusCode};
use reference_server::http_client::Auth;
use serde_json::{Value, json};

#[tokio::test]
async fn the_guides_smoke_tests_pass_and_the_first_log_line_names_the_mode() {
    let server = Server::start(&[]);
    assert!(
        server.first_log_line().contains("embedded mode"),
        "{}",
        server.first_log_line()
    );
    let health = server.get("/health", Auth::None).await;
    assert_eq!(health.status, StatusCode::OK);

    let mail = email("smoke");
    let r = server
        .post_registration(
            &json!({"organization_name":"Test","admin_email": mail,"admin_password":"Test123!"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
    let body: Value = r.json().unwrap();
    assert_eq!(body["tenant"]["name"], "Test");
    assert_eq!(body["tenant"]["status"], "active");
    assert!(body["tenant"]["slug"].is_string() && body["tenant"]["isolation"].is_string());
    assert_eq!(body["user"]["email"], mail.as_str());
    assert_eq!(body["user"]["role"], "owner");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_u64().unwrap() > 0);
    assert!(body["access_token"].as_str().unwrap().len() > 20);

    let r = server.login(&mail, "Test123!").await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    let login: Value = r.json().unwrap();
    assert_eq!(login["tenant_id"], body["tenant"]["id"]);
    assert_eq!(login["token_type"], "Bearer");

    // Every bad credential is the same 401.
    let wrong = server.login(&mail, "Wrong123!").await;
    let unknown = server.login(&email("nobody"), "Test123!").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong.json::<Value>().unwrap()["error"]["message"],
        unknown.json::<Value>().unwrap()["error"]["message"]
    );

    // A taken e-mail is a conflict; a bad one names its field.
    let again = server
        .post_registration(
            &json!({"organization_name":"Other","admin_email": mail,"admin_password":"Test123!"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", text(&again));
    let bad = server
        .post_registration(
            &json!({"organization_name":"Bad","admin_email":"not-an-email","admin_password":"Test123!"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        bad.json::<Value>().unwrap()["error"]["field"],
        "admin_email"
    );
}

#[tokio::test]
async fn companies_are_tenant_scoped_and_validated() {
    let server = Server::start(&[]);
    let (_, token, _) = server.register("Crm Co", &email("crm")).await;
    let auth = Auth::Bearer(&token);

    let created = server
        .post(
            "/api/companies",
            auth,
            &json!({"name":"Acme","domain":"acme.com"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", text(&created));
    let company: Value = created.json().unwrap();
    let id = company["id"].as_str().unwrap().to_owned();
    assert_eq!(company["domain"], "acme.com");
    assert!(company["created_at"].is_string());

    let path = format!("/api/companies/{id}");
    let patched = server
        .send(
            Method::PATCH,
            &path,
            auth,
            Some(&json!({"name":"Acme Corp","domain":null})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", text(&patched));
    let patched: Value = patched.json().unwrap();
    assert_eq!(
        (patched["name"].as_str(), patched["domain"].is_null()),
        (Some("Acme Corp"), true)
    );

    for i in 0..3 {
        let r = server
            .post("/api/companies", auth, &json!({"name": format!("C{i}")}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let page = server.get_json("/api/companies?limit=2", auth).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let next = page["next"].as_str().unwrap();
    let rest = server
        .get_json(&format!("/api/companies?limit=10&after={next}"), auth)
        .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 2);
    assert!(rest["next"].is_null());

    let bad = server
        .post("/api/companies", auth, &json!({"name":""}))
        .await;
    assert_eq!(
        (bad.status, code(&bad)),
        (StatusCode::BAD_REQUEST, "invalid_input".into())
    );
    let bad = server
        .post(
            "/api/companies",
            auth,
            &json!({"name":"x","domain":"no spaces.com x"}),
        )
        .await;
    assert_eq!(bad.json::<Value>().unwrap()["error"]["field"], "domain");
    let bad = server.get("/api/companies/not-a-uuid", auth).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let bad = server.get("/api/companies?limit=1000", auth).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    let deleted = server.send(Method::DELETE, &path, auth, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = server.get(&path, auth).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn tenant_b_cannot_reach_tenant_a_by_any_route() {
    let server = Server::start(&[]);
    let (id, token, _) = server.register("Alpha Org", &email("alpha")).await;
    let a = Org { id, token };
    let (id, token, _) = server.register("Beta Org", &email("beta")).await;
    let b = Org { id, token };
    assert_b_cannot_reach_a(&server, &a, &b).await;
}

#[tokio::test]
async fn the_tenant_rate_limit_answers_429_with_headers() {
    let server = Server::start(&[
        ("RATE_LIMIT_MAX_REQUESTS", "5"),
        ("RATE_LIMIT_WINDOW_MS", "60000"),
    ]);
    let (_, token, _) = server.register("Limited", &email("limited")).await;
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..7 {
        let r = server.get("/api/companies", Auth::Bearer(&token)).await;
        statuses.push(r.status.as_u16());
        last = Some(r);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429]);
    assert_rate_limited(&last.unwrap(), "5");
}

#[tokio::test]
async fn the_admin_api_manages_tenants() {
    let backups = TempDir::new("backups");
    let server = Server::start(&[("BACKUP_DIR", backups.path().to_str().unwrap())]);
    let admin = Auth::AdminKey(ADMIN_KEY);
    assert_eq!(
        server.get("/api/admin/tenants", Auth::None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server
            .get(
                "/api/admin/tenants",
                Auth::AdminKey("wrong-key-wrong-key-wrong-key-wrong")
            )
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    let (id, token, _) = server.register("Managed", &email("managed")).await;
    server.register("Other", &email("other")).await;
    let page = server.get_json("/api/admin/tenants?limit=1", admin).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let after = page["next"].as_str().unwrap();
    let page = server
        .get_json(
            &format!("/api/admin/tenants?status=active&after={after}"),
            admin,
        )
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        server
            .get("/api/admin/tenants?status=nope", admin)
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    let one = server
        .get_json(&format!("/api/admin/tenants/{id}"), admin)
        .await;
    assert_eq!(one["name"], "Managed");

    // Suspend: the tenant's requests are refused; resume: served again.
    let r = server
        .post(
            &format!("/api/admin/tenants/{id}/suspend"),
            admin,
            &json!({"reason":"unpaid"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    assert_eq!(r.json::<Value>().unwrap()["status_reason"], "unpaid");
    let refused = server.get("/api/companies", Auth::Bearer(&token)).await;
    assert_eq!(
        (refused.status, code(&refused)),
        (StatusCode::FORBIDDEN, "tenant_suspended".into())
    );
    let r = server
        .send(
            Method::POST,
            &format!("/api/admin/tenants/{id}/resume"),
            admin,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    assert_eq!(
        server
            .get("/api/companies", Auth::Bearer(&token))
            .await
            .status,
        StatusCode::OK
    );

    // Quota override, then cleared.
    let quota = json!({"rate":{"limit":2,"window_ms":60000},"max_users":5,"max_storage_bytes":1000000,"max_connections":3});
    let r = server
        .send(
            Method::PUT,
            &format!("/api/admin/tenants/{id}/quota"),
            admin,
            Some(&quota),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    let me = server.get_json("/api/tenant", Auth::Bearer(&token)).await;
    assert_eq!(me["quota"]["max_users"], 5);
    assert_eq!(me["usage"]["users"], 1);
    let bad = json!({"rate":{"limit":0,"window_ms":60000},"max_users":5,"max_storage_bytes":1,"max_connections":3});
    let r = server
        .send(
            Method::PUT,
            &format!("/api/admin/tenants/{id}/quota"),
            admin,
            Some(&bad),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = server
        .send(
            Method::PUT,
            &format!("/api/admin/tenants/{id}/quota"),
            admin,
            Some(&Value::Null),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);

    // Backup to BACKUP_DIR.
    server
        .post(
            "/api/companies",
            Auth::Bearer(&token),
            &json!({"name":"Kept"}),
        )
        .await;
    let r = server
        .send(
            Method::POST,
            &format!("/api/admin/tenants/{id}/backups"),
            admin,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
    let record: Value = r.json().unwrap();
    assert!(record["size_bytes"].as_u64().unwrap() > 0);
    assert!(
        backups
            .path()
            .join(record["key"].as_str().unwrap())
            .exists()
    );

    let pools = server.get("/api/admin/pools", admin).await;
    assert_eq!(pools.status, StatusCode::OK);

    let r = server
        .send(
            Method::DELETE,
            &format!("/api/admin/tenants/{id}"),
            admin,
            None,
        )
        .await;
    assert!(r.status.is_success(), "{}", text(&r));
    let r = server.get("/api/companies", Auth::Bearer(&token)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let missing = server
        .get(
            &format!("/api/admin/tenants/{}", uuid::Uuid::now_v7()),
            admin,
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn async_provisioning_reaches_active_through_the_worker() {
    let server = Server::start(&[("ENABLE_ASYNC_PROVISIONING", "true")]);
    let ready = server.get_json("/health/ready", Auth::None).await;
    assert_eq!(ready["components"]["worker"]["status"], "up");
    let r = server
        .post_registration(
            &json!({"organization_name":"Queued","admin_email": email("queued"),"admin_password":"Test123!"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", text(&r));
    let body: Value = r.json().unwrap();
    assert_eq!(body["tenant"]["status"], "provisioning");
    let token = body["access_token"].as_str().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = server.get("/api/tenant", Auth::Bearer(token)).await;
        if r.status == StatusCode::OK {
            assert_eq!(r.json::<Value>().unwrap()["status"], "active");
            break;
        }
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", text(&r));
        assert!(
            std::time::Instant::now() < deadline,
            "tenant never became active"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn metrics_carry_the_guides_series_on_the_metrics_port() {
    let server = Server::start(&[("METRICS_PORT", "0")]);
    let (_, token, _) = server.register("Measured", &email("measured")).await;
    server.get("/api/companies", Auth::Bearer(&token)).await;
    let metrics_url = server.metrics_url.clone().expect("metrics listener");
    let client = reference_server::http_client::HttpClient::new(&metrics_url).unwrap();
    let r = client.get("/metrics", Auth::None).await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let body = text(&r);
    assert_guide_series(&body);
    assert!(body.contains("active_tenants 1"), "{body}");
    assert!(
        body.contains("route=\"/api/companies\""),
        "route label is the template"
    );
    // On the API port, /metrics is not served when it has its own port.
    assert_eq!(
        server.get("/metrics", Auth::None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn sigterm_stops_the_server_cleanly() {
    let mut server = Server::start(&[("ENABLE_ASYNC_PROVISIONING", "true")]);
    server.register("Bye", &email("bye")).await;
    let status = server
        .terminate(Duration::from_secs(15))
        .expect("exited after SIGTERM");
    assert!(status.success(), "{status}");
    let logs = server.logs(Duration::from_secs(2)).join("\n");
    assert!(logs.contains("SIGTERM received"), "{logs}");
    assert!(logs.contains("provisioning worker stopped"), "{logs}");
}

#[test]
fn invalid_configuration_stops_start_up_naming_the_variable() {
    for (overrides, variable) in [
        (vec![("PORT", "http")], "PORT"),
        (
            vec![("APP_ENV", "production"), ("JWT_SECRET", "")],
            "JWT_SECRET",
        ),
        (
            vec![("APP_ENV", "production"), ("SUPER_ADMIN_KEY", "short")],
            "SUPER_ADMIN_KEY",
        ),
        (vec![("ENABLE_METRICS", "maybe")], "ENABLE_METRICS"),
        (vec![("WALL_KEY_ID", "0")], "WALL_KEY_ID"),
        (
            vec![("GLOBAL_DATABASE_URL", "mysql://db/x")],
            "GLOBAL_DATABASE_URL",
        ),
    ] {
        let out = common::command(&overrides).output().expect("run");
        assert_eq!(out.status.code(), Some(78), "{overrides:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("invalid configuration: {variable}:")),
            "{stderr}"
        );
    }
}

#[test]
fn development_mode_prints_a_generated_admin_key_once() {
    let mut server_cmd = common::command(&[
        ("SUPER_ADMIN_KEY", ""),
        ("APP_ENV", "development"),
        ("PORT", "http"),
    ]);
    // An invalid port stops start-up before the key is generated: nothing printed.
    let out = server_cmd.output().expect("run");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("generated for this run"));
    let mut server = Server::start(&[("SUPER_ADMIN_KEY", ""), ("APP_ENV", "development")]);
    let logs = server.logs(Duration::from_millis(500)).join("\n");
    let printed = logs.matches("generated for this run").count();
    assert_eq!(printed, 2, "one log warning and one stderr banner:\n{logs}");
    server.terminate(Duration::from_secs(10));
}

#[tokio::test]
async fn the_loadtest_command_drives_a_server_and_reports_percentiles() {
    let server = Server::start(&[]);
    let report = common::loadtest(
        &server.base_url,
        &["--tenants", "2", "--concurrency", "4", "--duration", "2"],
    )
    .await;
    let stdout = report.to_string();
    assert!(report["total"]["requests"].as_u64().unwrap() > 0);
    assert_eq!(report["total"]["errors"], 0);
    assert!(
        report["total"]["p99_ms"].as_f64().unwrap() >= report["total"]["p50_ms"].as_f64().unwrap()
    );
    for op in [
        "list_companies",
        "create_company",
        "register (setup)",
        "login (setup)",
    ] {
        assert!(
            report["operations"].get(op).is_some(),
            "{op} missing: {stdout}"
        );
    }
}

#[tokio::test]
async fn a_loadtest_can_reuse_the_tenants_an_earlier_run_saved() {
    let server = Server::start(&[]);
    let dir = TempDir::new("sessions");
    let file = dir.path().join("sessions.json");
    let file = file.to_str().unwrap();
    let first = common::loadtest(
        &server.base_url,
        &["--tenants", "3", "--concurrency", "4", "--duration", "1"],
    )
    .await;
    assert!(first["operations"].get("register (setup)").is_some());
    let saved = common::loadtest(
        &server.base_url,
        &[
            "--tenants",
            "5",
            "--concurrency",
            "2",
            "--duration",
            "1",
            "--save-sessions",
            file,
        ],
    )
    .await;
    assert_eq!(saved["tenants"], 5);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "tokens readable by others: {mode:o}");
    }
    // Five tenants for two clients: every request moves to another tenant, all of them
    // with a valid token; no sign-up runs.
    let reused = common::loadtest(
        &server.base_url,
        &["--sessions", file, "--concurrency", "2", "--duration", "1"],
    )
    .await;
    assert_eq!(reused["tenants"], 5);
    assert!(reused["total"]["ok"].as_u64().unwrap() > 10, "{reused}");
    assert_eq!(reused["total"]["errors"], 0, "{reused}");
    assert!(reused["operations"].get("register (setup)").is_none());
    let tenants: Value = server
        .get_json("/api/admin/tenants?limit=100", Auth::AdminKey(ADMIN_KEY))
        .await;
    assert_eq!(
        tenants["items"].as_array().map(Vec::len),
        Some(8),
        "{tenants}"
    );
}

#[tokio::test]
async fn retry_provisioning_is_an_admin_call_that_leaves_active_tenants_alone() {
    let server = Server::start(&[]);
    let admin = Auth::AdminKey(ADMIN_KEY);
    let retry = |id: &str| format!("/api/admin/tenants/{id}/retry-provisioning");
    let (id, token, _) = server.register("Retried", &email("retried")).await;

    let r = server
        .send(Method::POST, &retry(&id), Auth::None, None)
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert!(
        r.header("content-type")
            .is_some_and(|v| v.starts_with("application/json"))
    );

    let unknown = uuid::Uuid::now_v7().to_string();
    let r = server
        .send(Method::POST, &retry(&unknown), admin, None)
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "tenant_not_found");

    let before = server
        .get_json(&format!("/api/admin/tenants/{id}"), admin)
        .await;
    let r = server.send(Method::POST, &retry(&id), admin, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    let after: Value = r.json().unwrap();
    assert_eq!(after["id"], id.as_str());
    assert_eq!(after["status"], "active");
    assert_eq!(after["updated_at"], before["updated_at"], "left unchanged");
    assert_eq!(
        server
            .get("/api/companies", Auth::Bearer(&token))
            .await
            .status,
        StatusCode::OK
    );

    let r = server
        .post(
            &format!("/api/admin/tenants/{id}/suspend"),
            admin,
            &json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    let r = server.send(Method::POST, &retry(&id), admin, None).await;
    assert_error(&r, StatusCode::CONFLICT, "invalid_status_transition");
    let still = server
        .get_json(&format!("/api/admin/tenants/{id}"), admin)
        .await;
    assert_eq!(still["status"], "suspended");
}

#[tokio::test]
async fn retry_provisioning_answers_202_exactly_when_the_tenant_is_queued() {
    let server = Server::start(&[("ENABLE_ASYNC_PROVISIONING", "true")]);
    let admin = Auth::AdminKey(ADMIN_KEY);
    let (id, _, _) = server.register("Requeued", &email("requeued")).await;
    // The worker may finish the first run before the retry: either way the answer's status
    // code and the tenant's status agree, and the tenant ends active.
    let r = server
        .send(
            Method::POST,
            &format!("/api/admin/tenants/{id}/retry-provisioning"),
            admin,
            None,
        )
        .await;
    let body: Value = r.json().unwrap();
    match r.status {
        StatusCode::ACCEPTED => assert_eq!(body["status"], "provisioning"),
        StatusCode::OK => assert_eq!(body["status"], "active"),
        other => panic!("unexpected {other}: {body}"),
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let tenant = server
            .get_json(&format!("/api/admin/tenants/{id}"), admin)
            .await;
        if tenant["status"] == "active" {
            break;
        }
        assert_eq!(tenant["status"], "provisioning", "{tenant}");
        assert!(
            std::time::Instant::now() < deadline,
            "tenant never became active"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
