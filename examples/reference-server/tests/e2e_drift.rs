//! Drift detection through the reference server: `GET /api/admin/migrations/drift` and
//! `tenant-cli migrate check` report a fresh deployment clean, then name exactly the tenant
//! whose schema was changed by hand and what changed; the gauge follows; bad parameters are
//! answered 400 naming the parameter.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::pg::PgEnv;
use common::{ADMIN_KEY, assert_error, text};
use http::StatusCode;
use reference_server::http_client::Auth;
use serde_json::Value;
use sqlx::Connection;

/// The database and schema of a tenant, from the registry.
async fn placement(env: &PgEnv, id: &str) -> (String, String) {
    let mut conn = env.registry().await;
    let row: (String, Option<String>) = sqlx::query_as(
        "SELECT database_name, schema_name FROM tm_tenants WHERE id = $1::text::uuid",
    )
    .bind(id)
    .fetch_one(&mut conn)
    .await
    .expect("placement");
    let _ = conn.close().await;
    (row.0, row.1.unwrap_or_else(|| "public".to_owned()))
}

#[tokio::test]
async fn the_admin_route_and_the_cli_name_the_drifted_tenant_and_what_differs() {
    let env = PgEnv::new().await;
    let server = env.server(&[]);
    let admin = Auth::AdminKey(ADMIN_KEY);
    let (schema_id, _, _) = env.register(&server, "driftsc", "schema").await;
    let (db_id, _, _) = env.register(&server, "driftdb", "database").await;
    let (shared_id, _, _) = env.register(&server, "driftsh", "shared").await;

    let clean = server.get("/api/admin/migrations/drift", admin).await;
    assert_eq!(clean.status, StatusCode::OK, "{}", text(&clean));
    let clean: Value = clean.json().unwrap();
    assert_eq!(clean["tenants_checked"], 3, "{clean}");
    assert_eq!(clean["drifted"], Value::Array(vec![]), "{clean}");
    let metrics = text(&server.get("/metrics", Auth::None).await);
    assert!(
        metrics.contains("tenant_manager_schema_drift_tenants 0"),
        "{metrics}"
    );

    // By hand, the schema tenant's company domains get an index the migrations never made.
    let (database, schema) = placement(&env, &schema_id).await;
    let mut conn = env.admin(&database).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE INDEX by_hand ON \"{schema}\".companies (domain)"
    )))
    .execute(&mut conn)
    .await
    .expect("index by hand");
    let _ = conn.close().await;

    let report: Value = server
        .get_json("/api/admin/migrations/drift?concurrency=2", admin)
        .await;
    let drifted = report["drifted"].as_array().expect("drifted");
    assert_eq!(drifted.len(), 1, "{report}");
    assert_eq!(drifted[0]["tenants"][0]["id"], schema_id.as_str());
    assert_eq!(drifted[0]["isolation"], "schema");
    let differences = drifted[0]["differences"].as_array().expect("differences");
    assert_eq!(differences.len(), 1, "{report}");
    assert_eq!(differences[0]["kind"], "index");
    assert_eq!(differences[0]["table"], "companies");
    assert_eq!(differences[0]["name"], "by_hand");
    assert_eq!(differences[0]["change"], "extra");
    assert_eq!(
        differences[0]["actual"],
        "CREATE INDEX by_hand ON companies USING btree (domain)"
    );
    for other in [&db_id, &shared_id] {
        assert!(!report.to_string().contains(other.as_str()), "{report}");
    }
    let metrics = text(&server.get("/metrics", Auth::None).await);
    assert!(
        metrics.contains("tenant_manager_schema_drift_tenants 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tenant_manager_schema_drift_objects{kind=\"index\"} 1"),
        "{metrics}"
    );

    // The same report from tenant-cli: exit 1, the tenant and the index named.
    let out = env.cli(&["migrate", "check", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let printed: Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(printed["drifted"], report["drifted"]);
    let out = env.cli(&["migrate", "check"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let lines = String::from_utf8_lossy(&out.stdout);
    assert!(lines.contains("extra index companies.by_hand"), "{lines}");
    // Only database tenants: none of them drifted.
    let out = env
        .cli(&["migrate", "check", "--isolation", "database"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    // Bad parameters: 400 naming the parameter.
    for (query, field) in [
        ("concurrency=0", "concurrency"),
        ("concurrency=33", "concurrency"),
        ("concurrency=many", "concurrency"),
        ("isolation=cluster", "isolation"),
        ("bogus=1", "query"),
    ] {
        let r = server
            .get(&format!("/api/admin/migrations/drift?{query}"), admin)
            .await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_input");
        let body: Value = r.json().unwrap();
        assert_eq!(body["error"]["field"], field, "{query}: {body}");
    }
    let r = server.get("/api/admin/migrations/drift", Auth::None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", text(&r));
    let openapi = server.get_json("/api/openapi.json", Auth::None).await;
    assert!(openapi["paths"]["/api/admin/migrations/drift"]["get"].is_object());
}
