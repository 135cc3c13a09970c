//! End-to-end, through the real `reference-server` and `tenant-cli`, on two real Postgres
//! servers: the shared one and a private cluster this test starts (initdb + pg_ctl on a free
//! port, removed at the end). `TENANT_SERVERS` lists both; tenants land on both by the
//! placement policy, regions pin, an operator's `server` overrides, each tenant's data and
//! scoped connections are on its server, and fleet migrations, backups, `/health/ready` and
//! `/metrics` reach both.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::pg::PgEnv;
use common::{ADMIN_KEY, TempDir, code, email, text};
use http::StatusCode;
use reference_server::http_client::Auth;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use tenant_manager_test_support::{PrivatePostgres, postgres_admin_url};

const ADMIN: Auth<'static> = Auth::AdminKey(ADMIN_KEY);

/// A tenant created through the admin API: its id, owner token and admin view.
struct Created {
    id: String,
    token: String,
    view: Value,
}

async fn create(server: &common::Server, body: Value) -> Created {
    let r = server.post("/api/admin/tenants", ADMIN, &body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{body}: {}", text(&r));
    let answer: Value = r.json().unwrap();
    let id = answer["tenant"]["id"].as_str().unwrap().to_owned();
    let token = answer["access_token"].as_str().unwrap().to_owned();
    let view = server
        .get_json(&format!("/api/admin/tenants/{id}"), ADMIN)
        .await;
    Created { id, token, view }
}

fn body(env: &PgEnv, name: &str, isolation: &str, extra: &[(&str, &str)]) -> Value {
    let mut body = json!({
        "organization_name": format!("Org {name}"),
        "admin_email": email(name),
        "admin_password": "Test123!",
        "slug": env.slug(name),
        "isolation": isolation,
    });
    for (k, v) in extra {
        body[*k] = json!(v);
    }
    body
}

async fn connect(url: &str) -> PgConnection {
    PgConnection::connect(url).await.expect("connect")
}

/// Whether the tenant's own storage (database, or schema in its database) exists on the
/// server of `admin_url`, read from that server's catalog.
async fn storage_on(server_url: impl Fn(&str) -> String, view: &Value) -> bool {
    let placement = &view["placement"];
    let database = placement["database"].as_str().unwrap();
    let mut postgres = connect(&server_url("postgres")).await;
    let db_exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(database)
            .fetch_one(&mut postgres)
            .await
            .unwrap();
    let _ = postgres.close().await;
    let Some(schema) = placement["schema"].as_str() else {
        return db_exists;
    };
    if !db_exists {
        return false;
    }
    let mut conn = connect(&server_url(database)).await;
    let exists =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    let _ = conn.close().await;
    exists
}

/// Company names of a database-isolated tenant, read on its server directly.
async fn companies_in(url: &str) -> Vec<String> {
    let mut conn = connect(url).await;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT n.nspname || '.' || c.relname || ':' || c.relkind::text FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let names = sqlx::query_scalar("SELECT name FROM companies ORDER BY name")
        .fetch_all(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}; tables {tables:?}"));
    let _ = conn.close().await;
    names
}

#[tokio::test]
async fn tenants_are_placed_on_two_servers_and_every_operation_reaches_both() {
    let pg2 = PrivatePostgres::start();
    let env = PgEnv::new().await;
    let shared_admin = postgres_admin_url().await;
    let servers = format!(
        "default={shared_admin};region=eu pg2={};region=us",
        pg2.admin_url()
    );
    let server = env.server(&[("TENANT_SERVERS", servers.as_str())]);
    let url_on = |server_id: &str, database: &str| -> String {
        if server_id == "pg2" {
            pg2.url(database)
        } else {
            let mut url = url::Url::parse(&shared_admin).unwrap();
            url.set_path(database);
            url.to_string()
        }
    };

    // Least loaded: tenants without a region alternate (ties go to `default`).
    let mut placed = Vec::new();
    for (name, isolation) in [
        ("d1", "database"),
        ("d2", "database"),
        ("s1", "schema"),
        ("s2", "schema"),
        ("r1", "shared"),
        ("r2", "shared"),
    ] {
        let tenant = create(&server, body(&env, name, isolation, &[])).await;
        placed.push((name, isolation, tenant));
    }
    let on: Vec<&str> = placed
        .iter()
        .map(|(_, _, t)| t.view["placement"]["server"].as_str().unwrap())
        .collect();
    assert_eq!(on, ["default", "pg2", "default", "pg2", "default", "pg2"]);

    // Each tenant's storage is on its server, and only there.
    for (name, _, tenant) in &placed {
        let here = tenant.view["placement"]["server"].as_str().unwrap();
        let other = if here == "pg2" { "default" } else { "pg2" };
        if tenant.view["isolation"] == "shared" {
            continue; // rows in the shared tables: checked below through the API's writes.
        }
        assert!(
            storage_on(|db| url_on(here, db), &tenant.view).await,
            "{name} not on {here}"
        );
        assert!(
            !storage_on(|db| url_on(other, db), &tenant.view).await,
            "{name} also on {other}"
        );
    }

    // Scoped connections go to the tenant's server: a company written through the API is
    // in the tenant's database on that server.
    for (name, _, tenant) in placed.iter().filter(|(_, i, _)| *i == "database") {
        let r = server
            .post(
                "/api/companies",
                Auth::Bearer(&tenant.token),
                &json!({ "name": format!("Co {name}") }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
        let here = tenant.view["placement"]["server"].as_str().unwrap();
        let database = tenant.view["placement"]["database"].as_str().unwrap();
        assert_eq!(
            companies_in(&url_on(here, database)).await,
            [format!("Co {name}")]
        );
    }
    // Shared tenants on pg2: their rows are in pg2's shared database.
    let (_, _, r2) = placed.iter().find(|(n, _, _)| *n == "r2").unwrap();
    let r = server
        .post(
            "/api/companies",
            Auth::Bearer(&r2.token),
            &json!({ "name": "Shared Co" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
    let shared_db = r2.view["placement"]["database"].as_str().unwrap();
    let mut conn = connect(&pg2.url(shared_db)).await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM companies WHERE name = 'Shared Co'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let _ = conn.close().await;
    assert_eq!(rows, 1);

    // Region pinning, and the operator's override.
    let eu = create(&server, body(&env, "eu", "schema", &[("region", "eu")])).await;
    assert_eq!(eu.view["placement"]["server"], "default");
    assert_eq!(eu.view["region"], "eu");
    let us = create(&server, body(&env, "us", "database", &[("region", "us")])).await;
    assert_eq!(us.view["placement"]["server"], "pg2");
    let chosen = create(&server, body(&env, "ovr", "database", &[("server", "pg2")])).await;
    assert_eq!(chosen.view["placement"]["server"], "pg2");
    for (extra, field) in [
        (vec![("region", "ap")], "region"),
        (vec![("server", "nope")], "server"),
        (vec![("server", "pg2"), ("region", "eu")], "server"),
    ] {
        let r = server
            .post(
                "/api/admin/tenants",
                ADMIN,
                &body(&env, "bad", "schema", &extra),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", text(&r));
        let answer: Value = r.json().unwrap();
        assert_eq!(answer["error"]["field"], field, "{answer}");
        assert_eq!(code(&r), "invalid_input");
    }
    // Anonymous sign-ups cannot choose the server.
    let r = server
        .post_registration(&body(&env, "anon", "schema", &[("server", "pg2")]))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", text(&r));

    // Readiness and metrics show each server.
    let ready = server.get_json("/health/ready", Auth::None).await;
    for id in ["default", "pg2"] {
        assert_eq!(
            ready["components"][format!("database_server:{id}")]["status"],
            "up",
            "{ready}"
        );
    }
    let metrics = text(&server.get("/metrics", Auth::None).await);
    let tenants_on = |id: &str| -> Option<f64> {
        let series = format!("database_server_tenants{{server=\"{id}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series.as_str()))
            .and_then(|v| v.trim().parse().ok())
    };
    assert_eq!(tenants_on("pg2"), Some(5.0), "{metrics}");
    assert_eq!(tenants_on("default"), Some(4.0), "{metrics}");

    // A fleet migration reaches tenants on both servers: drop the CRM table and its record
    // in one database-isolated tenant on each, and `tenant-cli migrate tenants` restores both.
    let isolated: Vec<&Created> = placed
        .iter()
        .filter(|(_, i, _)| *i == "database")
        .map(|(_, _, t)| t)
        .collect();
    let databases: Vec<String> = isolated
        .iter()
        .map(|t| {
            let p = &t.view["placement"];
            url_on(
                p["server"].as_str().unwrap(),
                p["database"].as_str().unwrap(),
            )
        })
        .collect();
    let mut registry = env.registry().await;
    for tenant in &isolated {
        let id: uuid::Uuid = tenant.id.parse().unwrap();
        sqlx::query("DELETE FROM tm_tenant_migrations WHERE tenant_id = $1")
            .bind(id)
            .execute(&mut registry)
            .await
            .unwrap();
    }
    let _ = registry.close().await;
    for url in &databases {
        let mut conn = connect(url).await;
        sqlx::raw_sql("DROP TABLE companies; DELETE FROM _sqlx_migrations")
            .execute(&mut conn)
            .await
            .unwrap();
        let _ = conn.close().await;
    }
    // tenant-cli takes the same server list.
    let cli = |args: &[&str]| {
        let mut cmd = env.cli(args);
        cmd.env("TENANT_SERVERS", &servers);
        cmd
    };
    let out = cli(&["migrate", "tenants"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for url in &databases {
        assert!(companies_in(url).await.is_empty(), "table back in {url}");
    }

    // A backup of every tenant reaches both servers.
    let backups = TempDir::new("placement-backups");
    let out = cli(&[
        "backup",
        "--all",
        "--destination",
        backups.path().to_str().unwrap(),
    ])
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for tenant in placed.iter().map(|(_, _, t)| t).chain([&us, &chosen, &eu]) {
        assert!(
            stdout.lines().any(|l| l.starts_with(&tenant.id)),
            "no backup of {}: {stdout}",
            tenant.id
        );
    }

    // tenant-cli places with the same list.
    let out = cli(&[
        "tenants",
        "create",
        "--name",
        "Cli Org",
        "--admin-email",
        &email("cli"),
        "--slug",
        &env.slug("cli"),
        "--isolation",
        "database",
        "--server",
        "pg2",
    ])
    .env("TENANT_ADMIN_PASSWORD", "Test123!")
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tenant: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(tenant["placement"]["server"], "pg2", "{tenant}");
    drop(server);
}

#[tokio::test]
async fn when_every_server_is_full_registration_says_no_server_capacity() {
    let env = PgEnv::new().await;
    let shared_admin = postgres_admin_url().await;
    let servers = format!("default={shared_admin};capacity=1");
    let server = env.server(&[("TENANT_SERVERS", servers.as_str())]);
    create(&server, body(&env, "first", "schema", &[])).await;
    let r = server
        .post(
            "/api/admin/tenants",
            ADMIN,
            &body(&env, "second", "schema", &[]),
        )
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", text(&r));
    assert_eq!(code(&r), "no_server_capacity");
}
