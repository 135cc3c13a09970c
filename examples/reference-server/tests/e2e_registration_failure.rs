//! End-to-end: a registration whose provisioning fails answers `503 provisioning_failed` with
//! the tenant id and `Retry-After`, and its e-mail stays usable: the same registration again
//! provisions the same tenant (inline, or queued when a worker failed it later), a registration
//! asking for another slug replaces it, a stranger's password gets `409`. Anonymous callers
//! get only the operator's self-service isolation modes; the admin API creates any. Logs
//! written to a pipe carry no colour codes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/proxy.rs"]
mod proxy;

use std::time::{Duration, Instant};

use common::pg::PgEnv;
use common::{ADMIN_KEY, Server, code, email, text};
use http::{Method, StatusCode};
use proxy::CutProxy;
use reference_server::http_client::Auth;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

/// How long the worker may take to finish a queued run: a hang limit, not a measurement.
const SETTLE: Duration = Duration::from_secs(30);

/// The tenant's status as the registry holds it.
async fn status_of(conn: &mut PgConnection, id: &str) -> String {
    sqlx::query_scalar("SELECT status FROM tm_tenants WHERE id = $1")
        .bind(id.parse::<uuid::Uuid>().unwrap())
        .fetch_one(conn)
        .await
        .unwrap()
}

/// How many tenants and users the registry holds.
async fn counts(conn: &mut PgConnection) -> (i64, i64) {
    sqlx::query_as("SELECT (SELECT count(*) FROM tm_tenants), (SELECT count(*) FROM tm_users)")
        .fetch_one(conn)
        .await
        .unwrap()
}

/// Asserts a `503 provisioning_failed` naming a tenant with `Retry-After`; returns the id.
fn assert_provisioning_failed(r: &reference_server::http_client::HttpResponse) -> String {
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", text(r));
    assert_eq!(code(r), "provisioning_failed", "{}", text(r));
    assert!(
        r.header("retry-after")
            .is_some_and(|v| v.parse::<u64>().is_ok_and(|s| s >= 1)),
        "retry-after: {:?}",
        r.header("retry-after")
    );
    let body: Value = r.json().unwrap();
    body["error"]["tenant_id"]
        .as_str()
        .expect("tenant_id")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_registration_answers_503_and_the_same_registration_resumes_it() {
    let env = PgEnv::new().await;
    let proxy = CutProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let port = proxy.port.to_string();
    // Provisioning (the admin login) goes through the proxy; the registry does not.
    let server = env.server(&[
        ("POSTGRES_ADMIN_HOST", "127.0.0.1"),
        ("POSTGRES_ADMIN_PORT", &port),
    ]);
    let mut conn = PgConnection::connect(&env.global_url()).await.unwrap();
    let owner = email("failing");
    let registration = json!({
        "organization_name": "Org failing",
        "admin_email": owner,
        "admin_password": "Test123!",
        "slug": env.slug("failing"),
        "isolation": "schema",
    });

    proxy.cut();
    let r = server.post_registration(&registration).await;
    let id = assert_provisioning_failed(&r);
    assert_eq!(status_of(&mut conn, &id).await, "failed");
    let r = server.login(&owner, "Test123!").await;
    assert_ne!(
        r.status,
        StatusCode::OK,
        "a failed tenant's owner cannot log in"
    );

    // Still failing: the same registration answers the same tenant, not `409` on `email`.
    let r = server.post_registration(&registration).await;
    assert_eq!(assert_provisioning_failed(&r), id);

    // A stranger who knows the e-mail but not the password gets what any taken e-mail gets.
    let mut stranger = registration.clone();
    stranger["admin_password"] = json!("Stranger456!");
    let r = server.post_registration(&stranger).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", text(&r));
    assert_eq!(r.json::<Value>().unwrap()["error"]["field"], "email");
    assert_eq!(
        counts(&mut conn).await,
        (1, 1),
        "nothing created for the stranger"
    );

    // Storage back: the same registration provisions the same tenant, and it serves.
    proxy.restore();
    let (again, token, body) = server.register_with(&registration).await;
    assert_eq!(again, id, "{body}");
    assert_eq!(body["tenant"]["status"], "active", "{body}");
    assert_eq!(status_of(&mut conn, &id).await, "active");
    let r = server.get("/api/companies", Auth::Bearer(&token)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    let r = server.login(&owner, "Test123!").await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));

    // An active tenant's e-mail is taken for good, whatever password is offered.
    let r = server.post_registration(&registration).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", text(&r));
    assert_eq!(counts(&mut conn).await, (1, 1));

    // A failed registration retried with another slug replaces the failed tenant.
    let other = email("replaced");
    let first = json!({
        "organization_name": "Org replaced", "admin_email": other, "admin_password": "Test123!",
        "slug": env.slug("first"), "isolation": "schema",
    });
    proxy.cut();
    let failed = assert_provisioning_failed(&server.post_registration(&first).await);
    proxy.restore();
    let mut second = first.clone();
    second["slug"] = json!(env.slug("second"));
    let (replacing, _, body) = server.register_with(&second).await;
    assert_ne!(replacing, failed);
    assert_eq!(
        body["tenant"]["slug"],
        env.slug("second").as_str(),
        "{body}"
    );
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM tm_tenants WHERE id = $1")
        .bind(failed.parse::<uuid::Uuid>().unwrap())
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 0, "the failed tenant is purged");
    assert_eq!(counts(&mut conn).await, (2, 2));

    // `tenant-cli tenants create` (any isolation): a failed provisioning exits 1, and the
    // same command again provisions the same tenant.
    let cli_owner = email("cli");
    let slug = env.slug("cli");
    let create = || {
        let mut cmd = env.cli(&[
            "tenants",
            "create",
            "--name",
            "Org cli",
            "--admin-email",
            &cli_owner,
            "--slug",
            &slug,
            "--isolation",
            "database",
        ]);
        cmd.env("TENANT_ADMIN_PASSWORD", "Test123!")
            .env("POSTGRES_ADMIN_HOST", "127.0.0.1")
            .env("POSTGRES_ADMIN_PORT", &port);
        cmd
    };
    proxy.cut();
    let out = create().output().unwrap();
    let shown = |out: &std::process::Output| {
        format!(
            "exit {:?}\n{}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    assert_eq!(out.status.code(), Some(1), "{}", shown(&out));
    let failed: Value = serde_json::from_slice(&out.stdout).expect("the tenant as JSON");
    assert_eq!(failed["status"], "failed");
    proxy.restore();
    let out = create().output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let created: Value = serde_json::from_slice(&out.stdout).expect("the tenant as JSON");
    assert_eq!(
        (&created["id"], &created["status"]),
        (&failed["id"], &json!("active"))
    );
    assert_eq!(created["isolation"], "database");
    // Its storage goes with it.
    let r = server
        .send(
            Method::DELETE,
            &format!("/api/admin/tenants/{}", created["id"].as_str().unwrap()),
            Auth::AdminKey(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    let _ = conn.close().await;
    drop(server);
}

#[tokio::test]
async fn a_registration_failed_later_by_the_worker_frees_its_email_for_a_retry() {
    let env = PgEnv::new().await;
    let server = env.server(&[("ENABLE_ASYNC_PROVISIONING", "true")]);
    let mut conn = PgConnection::connect(&env.global_url()).await.unwrap();
    let registration = json!({
        "organization_name": "Org later",
        "admin_email": email("later"),
        "admin_password": "Test123!",
        "slug": env.slug("later"),
        "isolation": "shared",
    });
    let r = server.post_registration(&registration).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", text(&r));
    let id = r.json::<Value>().unwrap()["tenant"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = Instant::now() + SETTLE;
    while status_of(&mut conn, &id).await != "active" {
        assert!(Instant::now() < deadline, "the worker never finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // What the worker records when its last attempt fails.
    sqlx::query("UPDATE tm_tenants SET status = 'failed', status_reason = 'storage unreachable' WHERE id = $1")
        .bind(id.parse::<uuid::Uuid>().unwrap())
        .execute(&mut conn)
        .await
        .unwrap();

    let r = server.post_registration(&registration).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", text(&r));
    let body: Value = r.json().unwrap();
    assert_eq!(body["tenant"]["id"], id.as_str());
    assert_eq!(body["tenant"]["status"], "provisioning");
    let deadline = Instant::now() + SETTLE;
    while status_of(&mut conn, &id).await != "active" {
        assert!(
            Instant::now() < deadline,
            "the worker never finished the retry"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(counts(&mut conn).await, (1, 1));
    let _ = conn.close().await;
}

#[tokio::test]
async fn anonymous_registration_gets_only_the_self_service_isolation_modes() {
    let server = Server::start(&[]);
    let body = |isolation: &str, tag: &str| {
        json!({
            "organization_name": format!("Org {tag}"),
            "admin_email": email(tag),
            "admin_password": "Test123!",
            "isolation": isolation,
        })
    };
    let r = server.post_registration(&body("database", "db")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", text(&r));
    assert_eq!(code(&r), "isolation_not_allowed");
    assert_eq!(r.json::<Value>().unwrap()["error"]["field"], "isolation");
    for open in ["schema", "shared"] {
        let (_, _, created) = server.register_with(&body(open, open)).await;
        assert_eq!(created["tenant"]["isolation"], open);
    }
    let r = server.post_registration(&body("tables", "bad")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", text(&r));
    assert_eq!(r.json::<Value>().unwrap()["error"]["field"], "isolation");

    // The operator creates any isolation through the admin API.
    let r = server
        .send(
            Method::POST,
            "/api/admin/tenants",
            Auth::AdminKey(ADMIN_KEY),
            Some(&body("database", "admin")),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
    assert_eq!(
        r.json::<Value>().unwrap()["tenant"]["isolation"],
        "database"
    );
    let r = server
        .send(
            Method::POST,
            "/api/admin/tenants",
            Auth::None,
            Some(&body("database", "anon")),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", text(&r));
    drop(server);

    // An operator who opens database isolation to self-service, and only it: a registration
    // that names none gets it too.
    let server = Server::start(&[("SELF_SERVICE_ISOLATION", "database")]);
    let (_, _, created) = server.register_with(&body("database", "open")).await;
    assert_eq!(created["tenant"]["isolation"], "database");
    let r = server.post_registration(&body("schema", "closed")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", text(&r));
    let (_, _, created) = server
        .register_with(&json!({"organization_name": "Org none", "admin_email": email("none"), "admin_password": "Test123!"}))
        .await;
    assert_eq!(created["tenant"]["isolation"], "database");
}

#[test]
fn text_logs_to_a_pipe_carry_no_colour_codes() {
    use std::io::{BufRead, BufReader};
    let mut child = common::command(&[("LOG_FORMAT", "text"), ("LOG_LEVEL", "debug")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut lines = Vec::new();
    while !lines.iter().any(|l: &String| l.contains("serving the API")) {
        assert!(Instant::now() < deadline, "never served: {lines:?}");
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            lines.push(line);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(lines.len() > 1, "{lines:?}");
    let coloured: Vec<&String> = lines.iter().filter(|l| l.contains('\u{1b}')).collect();
    assert!(coloured.is_empty(), "colour codes in {coloured:?}");
}
