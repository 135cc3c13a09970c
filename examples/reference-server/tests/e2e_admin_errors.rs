//! End-to-end: every admin route on an unknown, a deleted and a purged tenant answers a JSON
//! error (`404` or `409`, never a `5xx`), or, for the reads and the idempotent delete of a
//! deleted tenant, the tenant as it is. A backup of a deleted tenant used to answer
//! `500 internal` (pg_dump of a dropped database).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::pg::PgEnv;
use common::{ADMIN_KEY, TempDir, code, text};
use http::{Method, StatusCode};
use reference_server::http_client::Auth;
use serde_json::{Value, json};
use tenant_manager::TenantRegistry;
use tenant_manager::postgres::PostgresRegistry;

/// Which tenant a call is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Unknown,
    Deleted,
    Purged,
}

/// One admin route: method, path under `/api/admin/tenants/{id}`, body, and the status a
/// deleted tenant gets (unknown and purged tenants always get `404 tenant_not_found`).
struct Route {
    method: Method,
    suffix: &'static str,
    body: Option<Value>,
    deleted: StatusCode,
}

fn routes() -> Vec<Route> {
    let quota = json!({
        "rate": {"limit": 10, "window_ms": 1000},
        "max_users": 5, "max_storage_bytes": 1_000_000, "max_connections": 2,
    });
    vec![
        Route {
            method: Method::POST,
            suffix: "/backups",
            body: None,
            deleted: StatusCode::CONFLICT,
        },
        Route {
            method: Method::GET,
            suffix: "",
            body: None,
            deleted: StatusCode::OK,
        },
        Route {
            method: Method::DELETE,
            suffix: "",
            body: None,
            deleted: StatusCode::OK,
        },
        Route {
            method: Method::POST,
            suffix: "/suspend",
            body: None,
            deleted: StatusCode::CONFLICT,
        },
        Route {
            method: Method::POST,
            suffix: "/resume",
            body: None,
            deleted: StatusCode::CONFLICT,
        },
        Route {
            method: Method::POST,
            suffix: "/retry-provisioning",
            body: None,
            deleted: StatusCode::CONFLICT,
        },
        Route {
            method: Method::PUT,
            suffix: "/quota",
            body: Some(quota),
            deleted: StatusCode::CONFLICT,
        },
        Route {
            method: Method::PUT,
            suffix: "/quota",
            body: Some(Value::Null),
            deleted: StatusCode::CONFLICT,
        },
    ]
}

/// Registers a schema-isolated organisation and deletes it through the admin API.
async fn deleted_tenant(server: &common::Server, env: &PgEnv, name: &str) -> String {
    let (id, _, _) = env.register(server, name, "schema").await;
    let r = server
        .send(
            Method::DELETE,
            &format!("/api/admin/tenants/{id}"),
            Auth::AdminKey(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    assert_eq!(r.json::<Value>().unwrap()["status"], "deleted");
    id
}

#[tokio::test]
async fn every_admin_route_on_an_unknown_deleted_or_purged_tenant_answers_404_or_409_json() {
    let env = PgEnv::new().await;
    let backups = TempDir::new("admin-errors");
    let server = env.server(&[("BACKUP_DIR", backups.path().to_str().unwrap())]);

    let deleted = deleted_tenant(&server, &env, "gone").await;
    let purged = deleted_tenant(&server, &env, "purged").await;
    // Purged by the registry itself (what a retention job does), behind this server's back.
    let pool = sqlx::PgPool::connect(&env.global_url()).await.unwrap();
    let registry = Arc::new(PostgresRegistry::new(pool.clone()));
    registry
        .purge_tenant(purged.parse().unwrap())
        .await
        .unwrap();
    let unknown = uuid::Uuid::now_v7().to_string();

    let mut seen = Vec::new();
    for (kind, id) in [
        (Kind::Unknown, &unknown),
        (Kind::Deleted, &deleted),
        (Kind::Purged, &purged),
    ] {
        for route in routes() {
            let path = format!("/api/admin/tenants/{id}{}", route.suffix);
            let r = server
                .send(
                    route.method.clone(),
                    &path,
                    Auth::AdminKey(ADMIN_KEY),
                    route.body.as_ref(),
                )
                .await;
            let what = format!(
                "{kind:?} {} {path}: {} {}",
                route.method,
                r.status,
                text(&r)
            );
            assert!(!r.status.is_server_error(), "{what}");
            assert_eq!(r.header("content-type"), Some("application/json"), "{what}");
            let expected = match kind {
                Kind::Deleted => route.deleted,
                Kind::Unknown | Kind::Purged => StatusCode::NOT_FOUND,
            };
            assert_eq!(r.status, expected, "{what}");
            match r.status {
                StatusCode::NOT_FOUND => assert_eq!(code(&r), "tenant_not_found", "{what}"),
                StatusCode::CONFLICT => assert!(!code(&r).is_empty(), "{what}"),
                _ => assert_eq!(r.json::<Value>().unwrap()["status"], "deleted", "{what}"),
            }
            seen.push(what);
        }
    }
    assert_eq!(seen.len(), 3 * routes().len());

    // The backup refusal names the status; nothing was written for the deleted tenant.
    let r = server
        .send(
            Method::POST,
            &format!("/api/admin/tenants/{deleted}/backups"),
            Auth::AdminKey(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(code(&r), "conflict", "{}", text(&r));
    assert_eq!(r.json::<Value>().unwrap()["error"]["field"], "status");
    let written = std::fs::read_dir(backups.path())
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(written, 0, "no artifact for a deleted tenant");
    pool.close().await;
}
