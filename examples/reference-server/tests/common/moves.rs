//! What the tests of moving a tenant read: the admin view of a tenant, the registry's record
//! of its moves, and waiting for a step.

use std::process::Child;
use std::time::{Duration, Instant};

use reference_server::http_client::Auth;
use serde_json::Value;
use sqlx::{Connection, PgConnection};

use super::{ADMIN_KEY, Server};

/// The tenant as `GET /api/admin/tenants/{id}` shows it.
pub async fn tenant(server: &Server, id: &str) -> Value {
    server
        .get_json(
            &format!("/api/admin/tenants/{id}"),
            Auth::AdminKey(ADMIN_KEY),
        )
        .await
}

/// A connection to `url`.
pub async fn connect(url: &str) -> PgConnection {
    PgConnection::connect(url).await.expect("connect")
}

/// The tenant's last move as the registry records it: its steps and state.
pub async fn move_row(registry: &mut PgConnection, id: &str) -> Option<(Vec<String>, String)> {
    sqlx::query_as(
        "SELECT done, state FROM tm_tenant_moves WHERE tenant_id = $1::uuid \
         ORDER BY created_at DESC LIMIT 1",
    )
    .bind(id)
    .fetch_optional(registry)
    .await
    .unwrap()
}

/// The tenant's status in the registry.
pub async fn status_of(registry: &mut PgConnection, id: &str) -> String {
    sqlx::query_scalar("SELECT status FROM tm_tenants WHERE id = $1::uuid")
        .bind(id)
        .fetch_one(registry)
        .await
        .unwrap()
}

/// Waits (at most two minutes) until the tenant's last move has recorded `step`; fails when
/// `child` (the `tenant-cli` running it) exits first.
pub async fn wait_for_step(registry: &mut PgConnection, id: &str, step: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some((done, _)) = move_row(registry, id).await
            && done.iter().any(|s| s == step)
        {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("tenant-cli exited ({status}) before the move recorded {step}");
        }
        assert!(Instant::now() < deadline, "the move never recorded {step}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A tenant made through the admin API on server `default`, holding `companies` companies
/// (`<name> co <i>`): its id and its admin's access token.
pub async fn make_on_default(
    server: &Server,
    env: &super::pg::PgEnv,
    name: &str,
    isolation: &str,
    companies: usize,
) -> (String, String) {
    let body = serde_json::json!({
        "organization_name": format!("Org {name}"),
        "admin_email": super::email(name),
        "admin_password": "Test123!",
        "slug": env.slug(name),
        "isolation": isolation,
        "server": "default",
    });
    let r = server
        .post("/api/admin/tenants", Auth::AdminKey(ADMIN_KEY), &body)
        .await;
    assert_eq!(r.status, http::StatusCode::CREATED, "{}", super::text(&r));
    let answer: Value = r.json().unwrap();
    let id = answer["tenant"]["id"].as_str().unwrap().to_owned();
    let token = answer["access_token"].as_str().unwrap().to_owned();
    for i in 0..companies {
        write(
            server,
            &token,
            &format!("{name} co {i}"),
            http::StatusCode::CREATED,
        )
        .await;
    }
    (id, token)
}

/// A company written through the API by `token`'s user, answered with `expected`.
pub async fn write(server: &Server, token: &str, name: &str, expected: http::StatusCode) {
    let r = server
        .post(
            "/api/companies",
            Auth::Bearer(token),
            &serde_json::json!({ "name": name }),
        )
        .await;
    assert_eq!(r.status, expected, "{}", super::text(&r));
}
