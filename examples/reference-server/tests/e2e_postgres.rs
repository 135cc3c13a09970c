//! End-to-end tests of the real `reference-server` and `tenant-cli` binaries on the real
//! Postgres and Redis: the guide's smoke tests and series, tenant isolation in each isolation
//! mode, rate limits and suspension shared by two instances through Redis, asynchronous
//! provisioning, and backup then restore into a new tenant.
//!
//! Each test runs its own deployment ([`PgEnv`]): a fresh global database, a Redis key prefix
//! and a tag on every database and role it creates, all dropped at the end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::isolation::{Org, assert_b_cannot_reach_a};
use common::pg::PgEnv;
use common::{
    ADMIN_KEY, Server, TempDir, assert_guide_series, assert_rate_limited, code, email, text,
};
use http::{Method, StatusCode};
use reference_server::http_client::Auth;
use serde_json::{Value, json};
use sqlx::Connection;

/// Registers `<tag>_<name>` with `isolation` ("" for the server's default).
async fn register(server: &Server, env: &PgEnv, name: &str, isolation: &str) -> (Org, Value) {
    let mut body = json!({
        "organization_name": format!("Org {name}"),
        "admin_email": email(name),
        "admin_password": "Test123!",
        "slug": env.slug(name),
    });
    if !isolation.is_empty() {
        body["isolation"] = json!(isolation);
    }
    let (id, token, answer) = server.register_with(&body).await;
    (Org { id, token }, answer)
}

/// Creates companies named `names` for `org` and returns them as the API answers them.
async fn add_companies(server: &Server, org: &Org, names: &[&str]) -> Vec<Value> {
    let mut created = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let domain = format!("c{i}.example.com");
        let r = server
            .post(
                "/api/companies",
                Auth::Bearer(&org.token),
                &json!({"name": name, "domain": domain}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
        created.push(r.json().unwrap());
    }
    created
}

/// Every company of `org`, through the API.
async fn companies(server: &Server, org: &Org) -> Vec<Value> {
    let r = server
        .get("/api/companies?limit=100", Auth::Bearer(&org.token))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    r.json::<Value>().unwrap()["items"]
        .as_array()
        .unwrap()
        .clone()
}

/// Polls `path` with `token` on `server` until it answers `want`, for at most `within`.
async fn eventually(
    server: &Server,
    path: &str,
    token: &str,
    want: StatusCode,
    within: Duration,
) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if server.get(path, Auth::Bearer(token)).await.status == want {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_guides_smoke_tests_and_series_on_postgres_and_redis() {
    let env = PgEnv::new().await;
    let mut server = env.server(&[]);
    let first = server.first_log_line().to_owned();
    assert!(
        first.contains("on Postgres") && first.contains("Redis"),
        "{first}"
    );
    assert_eq!(
        server.get("/health", Auth::None).await.status,
        StatusCode::OK
    );
    let ready = server.get("/health/ready", Auth::None).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", text(&ready));
    let ready: Value = ready.json().unwrap();
    assert_eq!(ready["components"]["database"]["backend"], "postgres");
    assert_eq!(ready["components"]["database"]["status"], "up");
    assert_eq!(ready["components"]["redis"]["status"], "up");

    // The guide's registration (with a slug of this test) and login.
    let mail = email("smoke");
    let r = server
        .post_registration(
            &json!({"organization_name":"Test","admin_email": mail,"admin_password":"Test123!",
                    "slug": env.slug("smoke")}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
    let body: Value = r.json().unwrap();
    assert_eq!(body["tenant"]["status"], "active");
    assert_eq!(body["tenant"]["isolation"], "schema");
    assert_eq!(body["user"]["role"], "owner");
    assert_eq!(body["token_type"], "Bearer");
    let r = server.login(&mail, "Test123!").await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    let login: Value = r.json().unwrap();
    assert_eq!(login["tenant_id"], body["tenant"]["id"]);
    let wrong = server.login(&mail, "Wrong123!").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    for taken in [
        json!({"organization_name":"Again","admin_email": mail,"admin_password":"Test123!",
               "slug": env.slug("again")}),
        json!({"organization_name":"Again","admin_email": email("again"),
               "admin_password":"Test123!","slug": env.slug("smoke")}),
    ] {
        let r = server.post_registration(&taken).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", text(&r));
    }

    // A company round trip through the tenant's pooled connection.
    let org = Org {
        id: body["tenant"]["id"].as_str().unwrap().to_owned(),
        token: login["access_token"].as_str().unwrap().to_owned(),
    };
    let created = add_companies(&server, &org, &["Acme"]).await;
    assert_eq!(companies(&server, &org).await, created);
    let me = server
        .get_json("/api/tenant", Auth::Bearer(&org.token))
        .await;
    assert_eq!(me["usage"]["users"], 1);

    // The pool manager's counts and the guide's series.
    let pools = server
        .get_json("/api/admin/pools", Auth::AdminKey(ADMIN_KEY))
        .await;
    assert_eq!(pools["max_total"], 4);
    assert_eq!(pools["max_per_tenant"], 2);
    assert!(
        pools["connections_opened"].as_u64().unwrap() >= 1,
        "{pools}"
    );
    let metrics = text(&server.get("/metrics", Auth::None).await);
    assert_guide_series(&metrics);
    assert!(metrics.contains("active_tenants 1\n"), "{metrics}");
    let opened = metrics
        .lines()
        .find_map(|l| l.strip_prefix("database_connections_total "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert!(opened.is_some_and(|n| n >= 1.0), "{metrics}");

    let status = server.terminate(Duration::from_secs(15)).expect("exited");
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn tenants_are_isolated_in_every_isolation_mode() {
    let env = PgEnv::new().await;
    let server = env.server(&[]);
    for isolation in ["schema", "database", "shared"] {
        let (a, _) = register(&server, &env, &format!("{isolation}_a"), isolation).await;
        let (b, answer) = register(&server, &env, &format!("{isolation}_b"), isolation).await;
        assert_eq!(answer["tenant"]["isolation"], isolation);
        let secret = assert_b_cannot_reach_a(&server, &a, &b).await;

        // Interleaved requests share pooled connections (the pool holds at most 4): each
        // tenant still sees only its own rows.
        let b_rows = add_companies(&server, &b, &["B Co"]).await;
        for _ in 0..10 {
            let seen_a = companies(&server, &a).await;
            assert_eq!(seen_a.len(), 1);
            assert_eq!(seen_a[0]["id"], secret.as_str());
            assert_eq!(companies(&server, &b).await, b_rows);
        }

        // The rows are where the isolation mode puts them.
        let a_slug = env.slug(&format!("{isolation}_a"));
        let b_slug = env.slug(&format!("{isolation}_b"));
        let stored = stored_owner(&env, isolation, [(&a_slug, &a), (&b_slug, &b)], &secret).await;
        assert_eq!(stored, a_slug, "{isolation}: A's company is in A's storage");
        if isolation == "database" {
            // Checked before the next mode's pools compete for the 4-connection budget (its
            // least-recently-used eviction may close A's idle connection then).
            assert_database_tenant_logs_in_as_itself(&env, &server, &a).await;
        }
    }
}

/// A database-isolated tenant's pooled connections log in as the tenant's own role.
async fn assert_database_tenant_logs_in_as_itself(env: &PgEnv, server: &Server, a: &Org) {
    let a_db = format!("{}_t_{}", env.tag, env.slug("database_a"));
    // A request right before the look keeps A's connection the most recently used.
    assert_eq!(companies(server, a).await.len(), 1);
    let mut admin = env.admin("postgres").await;
    let users: Vec<String> = sqlx::query_scalar(
        "SELECT usename::text FROM pg_stat_activity \
         WHERE datname = $1 AND application_name = 'reference-server'",
    )
    .bind(&a_db)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!users.is_empty(), "the pool keeps A's idle connection");
    assert!(users.iter().all(|u| *u == a_db), "{users:?}");
    let _ = admin.close().await;
}

/// Which of the tenants' storage holds the company `id`, read as the admin: the tenant's
/// schema, its database, or a shared row carrying its id. Returns that tenant's slug.
async fn stored_owner(
    env: &PgEnv,
    isolation: &str,
    tenants: [(&str, &Org); 2],
    id: &str,
) -> String {
    let id: uuid::Uuid = id.parse().unwrap();
    let mut owners = Vec::new();
    let tag = &env.tag;
    for (slug, org) in tenants {
        let tenant: uuid::Uuid = org.id.parse().unwrap();
        let (database, sql) = match isolation {
            "schema" => (
                format!("{}_shared", env.tag),
                format!(
                    "SELECT count(*) FROM \"{tag}_t_{slug}\".companies WHERE id = $1 \
                     AND $2::uuid IS NOT NULL"
                ),
            ),
            "database" => (
                format!("{tag}_t_{slug}"),
                "SELECT count(*) FROM public.companies WHERE id = $1 AND $2::uuid IS NOT NULL"
                    .to_owned(),
            ),
            _ => (
                format!("{}_shared", env.tag),
                "SELECT count(*) FROM public.companies WHERE id = $1 AND tenant_id = $2".to_owned(),
            ),
        };
        let mut conn = env.admin(&database).await;
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(tenant)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        let _ = conn.close().await;
        if n > 0 {
            owners.push(slug.to_owned());
        }
    }
    assert_eq!(owners.len(), 1, "{isolation}: stored in {owners:?}");
    owners.remove(0)
}

#[tokio::test]
async fn two_instances_share_rate_limits_and_suspensions_through_redis() {
    let env = PgEnv::new().await;
    let limited = [
        ("RATE_LIMIT_MAX_REQUESTS", "6"),
        ("RATE_LIMIT_WINDOW_MS", "60000"),
    ];
    let one = env.server(&limited);
    let two = env.server(&limited);
    let (org, _) = register(&one, &env, "limited", "database").await;

    // Six requests spread over both instances spend the tenant's limit on both.
    let mut statuses = Vec::new();
    for server in [&one, &two, &one, &two, &one, &two] {
        statuses.push(
            server
                .get("/api/companies", Auth::Bearer(&org.token))
                .await
                .status
                .as_u16(),
        );
    }
    assert_eq!(statuses, [200; 6]);
    for server in [&one, &two] {
        let r = server.get("/api/companies", Auth::Bearer(&org.token)).await;
        assert_rate_limited(&r, "6");
    }

    // Another tenant, unlimited: suspended through instance one, refused by both within a
    // second; resumed, served by both again.
    let (org, _) = register(&one, &env, "suspended", "database").await;
    let admin = Auth::AdminKey(ADMIN_KEY);
    let lift = json!({"rate":{"limit":100000,"window_ms":60000},"max_users":10,
                      "max_storage_bytes":1000000,"max_connections":2});
    let r = one
        .send(
            Method::PUT,
            &format!("/api/admin/tenants/{}/quota", org.id),
            admin,
            Some(&lift),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    for server in [&one, &two] {
        let r = server.get("/api/companies", Auth::Bearer(&org.token)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    }
    let pool_key = |stats: &Value| {
        stats["per_pool"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["tenant"] == org.id.as_str())
    };
    let stats = one.get_json("/api/admin/pools", admin).await;
    assert!(pool_key(&stats), "the tenant's own pool is open: {stats}");

    let r = one
        .post(
            &format!("/api/admin/tenants/{}/suspend", org.id),
            admin,
            &json!({"reason":"unpaid"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    let suspended_at = Instant::now();
    let refused = eventually(
        &two,
        "/api/tenant",
        &org.token,
        StatusCode::FORBIDDEN,
        Duration::from_secs(1),
    )
    .await;
    assert!(
        refused,
        "instance two still served the tenant {:?} after the suspension",
        suspended_at.elapsed()
    );
    let r = one.get("/api/tenant", Auth::Bearer(&org.token)).await;
    assert_eq!(
        (r.status, code(&r)),
        (StatusCode::FORBIDDEN, "tenant_suspended".to_owned())
    );
    let stats = one.get_json("/api/admin/pools", admin).await;
    assert!(!pool_key(&stats), "suspension closed the pool: {stats}");

    let r = one
        .send(
            Method::POST,
            &format!("/api/admin/tenants/{}/resume", org.id),
            admin,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    assert!(
        eventually(
            &two,
            "/api/companies",
            &org.token,
            StatusCode::OK,
            Duration::from_secs(1)
        )
        .await
    );
}

#[tokio::test]
async fn async_provisioning_reaches_active_through_the_worker_on_redis() {
    let env = PgEnv::new().await;
    let server = env.server(&[("ENABLE_ASYNC_PROVISIONING", "true")]);
    let ready = server.get_json("/health/ready", Auth::None).await;
    assert_eq!(ready["components"]["worker"]["status"], "up", "{ready}");
    for (name, isolation) in [("queued_db", "database"), ("queued_schema", "schema")] {
        let r = server
            .post_registration(
                &json!({"organization_name":"Queued","admin_email": email(name),
                        "admin_password":"Test123!","slug": env.slug(name),
                        "isolation": isolation}),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", text(&r));
        let body: Value = r.json().unwrap();
        assert_eq!(body["tenant"]["status"], "provisioning");
        let org = Org {
            id: body["tenant"]["id"].as_str().unwrap().to_owned(),
            token: body["access_token"].as_str().unwrap().to_owned(),
        };
        let not_ready = server.get("/api/tenant", Auth::Bearer(&org.token)).await;
        assert!(
            [StatusCode::CONFLICT, StatusCode::OK].contains(&not_ready.status),
            "{}",
            text(&not_ready)
        );
        assert!(
            eventually(
                &server,
                "/api/tenant",
                &org.token,
                StatusCode::OK,
                Duration::from_secs(60)
            )
            .await,
            "{isolation} tenant never became active"
        );
        let me = server
            .get_json("/api/tenant", Auth::Bearer(&org.token))
            .await;
        assert_eq!(me["status"], "active");
        // Its storage exists: the worker ran the migrations.
        let created = add_companies(&server, &org, &["Provisioned"]).await;
        assert_eq!(companies(&server, &org).await, created);
    }
}

#[tokio::test]
async fn backup_all_then_restore_into_a_new_tenant_gives_identical_rows() {
    let env = PgEnv::new().await;
    let backups = TempDir::new("backups");
    let dir = backups.path();
    let server = env.server(&[]);
    let mut sources = Vec::new();
    for isolation in ["database", "schema"] {
        let (org, _) = register(&server, &env, &format!("{isolation}_src"), isolation).await;
        add_companies(&server, &org, &["Alpha", "Beta", "Gamma"]).await;
        sources.push((isolation, org));
    }

    // tenant-cli backup --all: one line per tenant, `tenant_id backup_id key size`.
    let out = env
        .cli(&["backup", "--all", "--destination", dir.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (isolation, source) in &sources {
        let backup = stdout
            .lines()
            .find_map(|line| {
                let fields: Vec<&str> = line.split('\t').collect();
                (fields.first() == Some(&source.id.as_str())).then(|| fields[1].to_owned())
            })
            .unwrap_or_else(|| panic!("no backup of {isolation}: {stdout}"));

        // A new tenant of the same isolation, with a row of its own the restore replaces.
        let name = format!("{isolation}_copy");
        let (copy, _) = register(&server, &env, &name, isolation).await;
        add_companies(&server, &copy, &["Replaced"]).await;
        let out = env
            .cli(&[
                "restore",
                &backup,
                "--into",
                &env.slug(&name),
                "--source",
                dir.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let original = companies(&server, source).await;
        assert_eq!(original.len(), 3);
        assert_eq!(
            companies(&server, &copy).await,
            original,
            "{isolation}: the copy has the source's rows"
        );
    }

    // Deleting a tenant drops its database and role.
    let (_, source) = &sources[0];
    let r = server
        .send(
            Method::DELETE,
            &format!("/api/admin/tenants/{}", source.id),
            Auth::AdminKey(ADMIN_KEY),
            None,
        )
        .await;
    assert!(r.status.is_success(), "{}", text(&r));
    let left = env.leftovers().await;
    let gone = format!("{}_t_{}", env.tag, env.slug("database_src"));
    assert!(!left.contains(&gone), "{gone} still exists: {left:?}");
}
