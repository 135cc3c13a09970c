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
