//! End-to-end: a tenant left `provisioning` (an instance stopped mid-run) or `failed` in the
//! registry is brought back to `active` by `tenant-cli tenants retry` and by the admin API's
//! `retry-provisioning`, inline or queued for the worker with async provisioning; the CLI's
//! exit codes say not found and illegal status change.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::pg::PgEnv;
use common::{ADMIN_KEY, email, text};
use http::{Method, StatusCode};
use reference_server::http_client::Auth;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

/// How long the worker may take to finish a queued run: a hang limit, not a measurement.
const SETTLE: Duration = Duration::from_secs(20);

/// Sets the tenant's status (and reason) behind the toolkit's back.
async fn force_status(conn: &mut PgConnection, id: uuid::Uuid, status: &str, reason: Option<&str>) {
    let done = sqlx::query("UPDATE tm_tenants SET status = $2, status_reason = $3 WHERE id = $1")
        .bind(id)
        .bind(status)
        .bind(reason)
        .execute(conn)
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 1);
}

/// The tenant's status and reason as the registry holds them.
async fn stored(conn: &mut PgConnection, id: uuid::Uuid) -> (String, Option<String>) {
    sqlx::query_as("SELECT status, status_reason FROM tm_tenants WHERE id = $1")
        .bind(id)
        .fetch_one(conn)
        .await
        .unwrap()
}

/// Runs `tenant-cli` with `args`.
fn cli(env: &PgEnv, args: &[&str]) -> Output {
    env.cli(args).output().unwrap()
}

/// The output of a run, for assertion messages.
fn shown(out: &Output) -> String {
    format!(
        "exit {:?}\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn a_stuck_or_failed_tenant_is_provisioned_again_by_tenant_cli_and_the_admin_api() {
    let env = PgEnv::new().await;
    let server = env.server(&[]);
    let slug = env.slug("stuck");
    let (id, token, _) = server
        .register_with(&json!({
            "organization_name": "Org stuck",
            "admin_email": email("stuck"),
            "admin_password": "Test123!",
            "slug": slug,
            "isolation": "schema",
        }))
        .await;
    let uuid: uuid::Uuid = id.parse().unwrap();
    let mut conn = env.registry().await;

    // Stuck in `provisioning`: it cannot be deleted; a retry brings it to `active`.
    force_status(&mut conn, uuid, "provisioning", None).await;
    let out = cli(&env, &["tenants", "delete", &slug, "--yes"]);
    assert_eq!(out.status.code(), Some(4), "{}", shown(&out));
    let out = cli(&env, &["tenants", "retry", &slug]);
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let printed: Value = serde_json::from_slice(&out.stdout).expect("the tenant as JSON");
    assert_eq!(printed["id"], id.as_str());
    assert_eq!(printed["status"], "active");
    assert_eq!(stored(&mut conn, uuid).await, ("active".to_owned(), None));

    // An active tenant is left as it is (by id as well as by slug).
    let out = cli(&env, &["tenants", "retry", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    assert_eq!(stored(&mut conn, uuid).await.0, "active");

    // `failed` with a reason: the admin API provisions it again and clears the reason.
    force_status(&mut conn, uuid, "failed", Some("storage unreachable")).await;
    let r = server
        .send(
            Method::POST,
            &format!("/api/admin/tenants/{id}/retry-provisioning"),
            Auth::AdminKey(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    let body: Value = r.json().unwrap();
    assert_eq!(body["status"], "active");
    assert!(body["status_reason"].is_null(), "{body}");
    assert_eq!(stored(&mut conn, uuid).await, ("active".to_owned(), None));
    let r = server.get("/api/companies", Auth::Bearer(&token)).await;
    assert_eq!(r.status, StatusCode::OK, "served again: {}", text(&r));

    // With async provisioning the retry is queued (this server runs no worker, so the tenant
    // stays `provisioning`); a server that runs the worker takes the job and finishes it.
    force_status(&mut conn, uuid, "failed", Some("storage unreachable")).await;
    let out = env
        .cli(&["tenants", "retry", &slug])
        .env("ENABLE_ASYNC_PROVISIONING", "true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let printed: Value = serde_json::from_slice(&out.stdout).expect("the tenant as JSON");
    assert_eq!(printed["status"], "provisioning");
    assert_eq!(stored(&mut conn, uuid).await.0, "provisioning");
    let worker = env.server(&[("ENABLE_ASYNC_PROVISIONING", "true")]);
    let deadline = Instant::now() + SETTLE;
    while stored(&mut conn, uuid).await.0 != "active" {
        assert!(Instant::now() < deadline, "the worker never finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(worker);

    // Exit codes: 3 for an unknown tenant, 4 for a suspended one (left suspended).
    let out = cli(&env, &["tenants", "retry", &env.slug("nobody")]);
    assert_eq!(out.status.code(), Some(3), "{}", shown(&out));
    let out = cli(&env, &["tenants", "suspend", &slug]);
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let out = cli(&env, &["tenants", "retry", &slug]);
    assert_eq!(out.status.code(), Some(4), "{}", shown(&out));
    assert_eq!(stored(&mut conn, uuid).await.0, "suspended");
    let _ = conn.close().await;
}
