//! End-to-end, through the real `reference-server` and `tenant-cli`, on real Postgres servers
//! (the shared one and private clusters started here):
//! - while a move copies, the source refuses writes that bypass the application's pause: a
//!   database tenant's open sessions are ended and new ones are read-only; a schema tenant's
//!   app login loses its write privileges on the tenant's tables;
//! - a move is cancelled before its switch (by the admin route and by `tenant-cli`): the fence
//!   is lifted exactly as it was, the partial copy dropped, the tenant active where it was;
//! - a tenant whose earlier move waits only for its old storage's drop moves again, and both
//!   drops are done after their grace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;

use common::moves::{connect, make_on_default, move_row, status_of, tenant, wait_for_step, write};
use common::pg::PgEnv;
use common::{ADMIN_KEY, code, text};
use http::StatusCode;
use reference_server::http_client::Auth;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use tenant_manager_test_support::{PrivatePostgres, postgres_admin_url};

const ADMIN: Auth<'static> = Auth::AdminKey(ADMIN_KEY);

/// SQLSTATE of a write in a read-only transaction.
const READ_ONLY: &str = "25006";

/// A tenant made through the admin API on `default`, with two companies.
async fn make(
    server: &common::Server,
    env: &PgEnv,
    name: &str,
    isolation: &str,
) -> (String, String) {
    make_on_default(server, env, name, isolation, 2).await
}

/// `database` on a server's admin URL.
fn url_at(admin: &str, database: &str) -> String {
    let mut url = url::Url::parse(admin).unwrap();
    url.set_path(database);
    url.to_string()
}

async fn exists(admin: &str, database: &str, sql: &str, name: &str) -> bool {
    let mut conn = connect(&url_at(admin, database)).await;
    let found: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(name)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let _ = conn.close().await;
    found
}

async fn database_exists(admin: &str, database: &str) -> bool {
    exists(
        admin,
        "postgres",
        "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
        database,
    )
    .await
}

/// The role and database settings of the tenant's storage (`pg_db_role_setting`), as text.
async fn settings(admin: &str, database: &str) -> Vec<String> {
    let mut conn = connect(&url_at(admin, "postgres")).await;
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT coalesce(r.rolname, '-') || '@' || coalesce(d.datname, '-') || ':' || c \
         FROM pg_db_role_setting s CROSS JOIN LATERAL unnest(s.setconfig) c \
         LEFT JOIN pg_roles r ON r.oid = s.setrole LEFT JOIN pg_database d ON d.oid = s.setdatabase \
         WHERE d.datname = $1 OR r.rolname IN \
           (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1) \
         ORDER BY 1",
    )
    .bind(database)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let _ = conn.close().await;
    rows
}

/// Every privilege granted on the tables of `schema` (table, grantee, privilege, grantable).
async fn table_grants(
    conn: &mut PgConnection,
    schema: &str,
) -> Vec<(String, String, String, bool)> {
    sqlx::query_as(
        "SELECT c.relname::text, pg_get_userbyid(a.grantee)::text, a.privilege_type, a.is_grantable \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         CROSS JOIN LATERAL aclexplode(c.relacl) a \
         WHERE n.nspname = $1 AND c.relkind = 'r' ORDER BY 1, 2, 3",
    )
    .bind(schema)
    .fetch_all(conn)
    .await
    .unwrap()
}

/// The login other than the owner that may write the tenant's `companies` (the app login).
async fn app_login(conn: &mut PgConnection, schema: &str) -> String {
    sqlx::query_scalar(
        "SELECT DISTINCT pg_get_userbyid(a.grantee)::text FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace CROSS JOIN LATERAL aclexplode(c.relacl) a \
         WHERE n.nspname = $1 AND c.relname = 'companies' AND a.grantee <> c.relowner \
           AND a.privilege_type = 'SELECT'",
    )
    .bind(schema)
    .fetch_one(conn)
    .await
    .unwrap()
}

async fn app_may_insert(conn: &mut PgConnection, app: &str, schema: &str) -> bool {
    sqlx::query_scalar("SELECT has_table_privilege($1, format('%I.companies', $2::text), 'INSERT')")
        .bind(app)
        .bind(schema)
        .fetch_one(conn)
        .await
        .unwrap()
}

async fn states(registry: &mut PgConnection, id: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT state FROM tm_tenant_moves WHERE tenant_id = $1::uuid ORDER BY created_at",
    )
    .bind(id)
    .fetch_all(registry)
    .await
    .unwrap()
}

fn sqlstate(err: &sqlx::Error) -> String {
    err.as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_source_refuses_stale_writes_and_a_cancel_lifts_the_fence() {
    let pg2 = PrivatePostgres::start();
    let env = PgEnv::new().await;
    let default = postgres_admin_url().await;
    let servers = format!("default={default} pg2={}", pg2.admin_url());
    let settings_env = [
        ("TENANT_SERVERS", servers.as_str()),
        ("MOVE_DRAIN_MS", "200"),
        ("MOVE_GRACE_SECONDS", "3600"),
    ];
    let a = env.server(&settings_env);
    let cli = |args: &[&str], extra: &[(&str, &str)]| {
        let mut cmd = env.cli(args);
        cmd.envs(settings_env.iter().copied())
            .envs(extra.iter().copied());
        cmd
    };
    let mut registry = env.registry().await;
    let stall = [("MOVE_FAULT_STALL_AFTER", "copied")];

    // --- database tenant: a pool opened before the move, then honest new sessions ---
    let (d, d_token) = make(&a, &env, "fend", "database").await;
    let d_db = tenant(&a, &d).await["placement"]["database"]
        .as_str()
        .unwrap()
        .to_owned();
    let settings_before = settings(&default, &d_db).await;
    // A session that missed the pause (a stale pool of another instance).
    let mut stale = connect(&url_at(&default, &d_db)).await;
    sqlx::query("SELECT 1").execute(&mut stale).await.unwrap();
    let mut mover = cli(&["tenants", "move", &d, "--to", "pg2", "--wait"], &stall)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_step(&mut registry, &d, "copied", &mut mover).await;
    // The stale session was ended; a new one is read-only.
    let ended = sqlx::query("INSERT INTO companies (id, name) VALUES (gen_random_uuid(), 'stale')")
        .execute(&mut stale)
        .await;
    assert!(
        ended.is_err(),
        "a session opened before the fence still writes"
    );
    let mut fresh = connect(&url_at(&default, &d_db)).await;
    let refused =
        sqlx::query("INSERT INTO companies (id, name) VALUES (gen_random_uuid(), 'stale')")
            .execute(&mut fresh)
            .await
            .expect_err("a write reached the source during the move");
    assert_eq!(sqlstate(&refused), READ_ONLY, "{refused}");
    let _ = fresh.close().await;
    assert!(
        settings(&default, &d_db)
            .await
            .iter()
            .any(|s| s.ends_with(":default_transaction_read_only=on")),
        "no read-only default"
    );
    assert!(
        database_exists(&pg2.admin_url(), &d_db).await,
        "no copy on pg2"
    );
    mover.kill().unwrap();
    let _ = mover.wait();

    // Cancelled through the admin route.
    let cancel = a
        .post(
            &format!("/api/admin/tenants/{d}/move/cancel"),
            ADMIN,
            &json!({}),
        )
        .await;
    assert_eq!(cancel.status, StatusCode::OK, "{}", text(&cancel));
    assert_eq!(cancel.json::<Value>().unwrap()["state"], "cancelled");
    assert_eq!(move_row(&mut registry, &d).await.unwrap().1, "cancelled");
    assert_eq!(status_of(&mut registry, &d).await, "active");
    assert_eq!(tenant(&a, &d).await["placement"]["server"], "default");
    assert_eq!(settings(&default, &d_db).await, settings_before);
    assert!(
        !database_exists(&pg2.admin_url(), &d_db).await,
        "partial copy kept"
    );
    let mut fresh = connect(&url_at(&default, &d_db)).await;
    sqlx::query("SELECT count(*) FROM companies")
        .execute(&mut fresh)
        .await
        .unwrap();
    let read_only: String = sqlx::query_scalar("SHOW default_transaction_read_only")
        .fetch_one(&mut fresh)
        .await
        .unwrap();
    assert_eq!(read_only, "off");
    let _ = fresh.close().await;
    write(&a, &d_token, "after cancel", StatusCode::CREATED).await;
    // Cancelling again finishes nothing more and answers the same.
    let again = a
        .post(
            &format!("/api/admin/tenants/{d}/move/cancel"),
            ADMIN,
            &json!({}),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", text(&again));
    // A resume of a cancelled move is refused.
    let resume = cli(&["tenants", "move", &d, "--resume"], &[])
        .output()
        .unwrap();
    assert!(!resume.status.success(), "a cancelled move resumed");

    // --- schema tenant: the app login, as a stale instance would use it ---
    let (s, s_token) = make(&a, &env, "fens", "schema").await;
    let s_view = tenant(&a, &s).await;
    let s_db = s_view["placement"]["database"].as_str().unwrap().to_owned();
    let s_schema = s_view["placement"]["schema"].as_str().unwrap().to_owned();
    let mut shared = connect(&url_at(&default, &s_db)).await;
    let app = app_login(&mut shared, &s_schema).await;
    let grants_before = table_grants(&mut shared, &s_schema).await;
    assert!(app_may_insert(&mut shared, &app, &s_schema).await);
    let mut mover = cli(&["tenants", "move", &s, "--to", "pg2", "--wait"], &stall)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_step(&mut registry, &s, "copied", &mut mover).await;
    assert!(
        !app_may_insert(&mut shared, &app, &s_schema).await,
        "the app login still writes the source during the move"
    );
    let mut as_app = shared.begin().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("SET LOCAL ROLE \"{app}\"")))
        .execute(&mut *as_app)
        .await
        .unwrap();
    let refused = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM \"{s_schema}\".companies"
    )))
    .execute(&mut *as_app)
    .await
    .expect_err("the app login deleted rows at the source during the move");
    assert!(
        refused.to_string().contains("permission denied"),
        "{refused}"
    );
    drop(as_app);
    mover.kill().unwrap();
    let _ = mover.wait();
    // Writes through the API are paused meanwhile.
    let w = a
        .post(
            "/api/companies",
            Auth::Bearer(&s_token),
            &json!({ "name": "x" }),
        )
        .await;
    assert_eq!(
        (w.status, code(&w)),
        (StatusCode::SERVICE_UNAVAILABLE, "tenant_moving".into())
    );

    // Cancelled through tenant-cli: the grants come back exactly as they were.
    let out = cli(&["tenants", "move", &s, "--cancel"], &[])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(move_row(&mut registry, &s).await.unwrap().1, "cancelled");
    assert_eq!(status_of(&mut registry, &s).await, "active");
    assert_eq!(table_grants(&mut shared, &s_schema).await, grants_before);
    let copy_left = database_exists(&pg2.admin_url(), &s_db).await
        && exists(
            &pg2.admin_url(),
            &s_db,
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
            &s_schema,
        )
        .await;
    assert!(!copy_left, "partial copy kept");
    write(&a, &s_token, "after cancel", StatusCode::CREATED).await;
    let _ = shared.close().await;

    // A switched move is not cancelled.
    let out = cli(&["tenants", "move", &s, "--to", "pg2", "--wait"], &[])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let late = a
        .post(
            &format!("/api/admin/tenants/{s}/move/cancel"),
            ADMIN,
            &json!({}),
        )
        .await;
    assert_eq!(late.status, StatusCode::CONFLICT, "{}", text(&late));
    assert_eq!(late.json::<Value>().unwrap()["error"]["field"], "state");
    write(&a, &s_token, "moved", StatusCode::CREATED).await;

    drop(a);
    let _ = registry.close().await;
}

#[tokio::test]
async fn a_tenant_moves_again_while_its_old_storage_waits() {
    let pg2 = PrivatePostgres::start();
    let pg3 = PrivatePostgres::start();
    let env = PgEnv::new().await;
    let default = postgres_admin_url().await;
    let servers = format!(
        "default={default} pg2={} pg3={}",
        pg2.admin_url(),
        pg3.admin_url()
    );
    let settings_env = [
        ("TENANT_SERVERS", servers.as_str()),
        ("MOVE_DRAIN_MS", "100"),
        ("MOVE_GRACE_SECONDS", "3600"),
    ];
    let a = env.server(&settings_env);
    let cli = |args: &[&str]| {
        let mut cmd = env.cli(args);
        cmd.envs(settings_env.iter().copied());
        cmd
    };
    let mut registry = env.registry().await;
    let (d, token) = make(&a, &env, "again", "database").await;
    let d_db = tenant(&a, &d).await["placement"]["database"]
        .as_str()
        .unwrap()
        .to_owned();

    for to in ["pg2", "pg3"] {
        let out = cli(&["tenants", "move", &d, "--to", to, "--wait"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "to {to}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(tenant(&a, &d).await["placement"]["server"], to);
        write(&a, &token, &format!("on {to}"), StatusCode::CREATED).await;
    }
    assert_eq!(states(&mut registry, &d).await, ["switched", "switched"]);
    // Back onto a server still holding old storage of the tenant: refused, naming the field.
    let back = a
        .post(
            &format!("/api/admin/tenants/{d}/move"),
            ADMIN,
            &json!({ "server": "default" }),
        )
        .await;
    assert_eq!(back.status, StatusCode::CONFLICT, "{}", text(&back));
    assert_eq!(back.json::<Value>().unwrap()["error"]["field"], "server");
    for admin in [&default, &pg2.admin_url(), &pg3.admin_url()] {
        assert!(database_exists(admin, &d_db).await);
    }

    // Both graces over: one finish drops both old storages, never the one served.
    sqlx::query(
        "UPDATE tm_tenant_moves SET drop_after = now() - interval '1 second' \
         WHERE tenant_id = $1::uuid AND state = 'switched'",
    )
    .bind(&d)
    .execute(&mut registry)
    .await
    .unwrap();
    let out = cli(&["tenants", "move", &d, "--finish"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(states(&mut registry, &d).await, ["completed", "completed"]);
    assert!(
        !database_exists(&default, &d_db).await,
        "first old storage kept"
    );
    assert!(
        !database_exists(&pg2.admin_url(), &d_db).await,
        "second old storage kept"
    );
    assert!(database_exists(&pg3.admin_url(), &d_db).await);
    let list = a.get_json("/api/companies", Auth::Bearer(&token)).await;
    assert!(
        list.to_string().contains("on pg2") && list.to_string().contains("on pg3"),
        "{list}"
    );

    drop(a);
    let _ = registry.close().await;
}
