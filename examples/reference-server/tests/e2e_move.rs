//! End-to-end, through the real `reference-server` and `tenant-cli`, on two real Postgres
//! servers (the shared one and a private cluster started here): tenants of every isolation
//! move from `default` to `pg2`. Writes answer `503 tenant_moving` with `Retry-After` while
//! reads go on; a `tenant-cli` killed (SIGKILL) in the middle of a move is resumed by the same
//! command with no row lost or duplicated, including a row written at the source after the
//! copy; the data is identical at both ends (counts and checksums computed here); the registry
//! places the tenant on `pg2`, a second server instance serves it from there, and the old
//! storage is dropped only once its grace period is over.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::moves::{connect, make_on_default, move_row, status_of, tenant, wait_for_step};
use common::pg::PgEnv;
use common::{ADMIN_KEY, code, text};
use http::{Method, StatusCode};
use reference_server::http_client::Auth;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use tenant_manager_test_support::{PrivatePostgres, postgres_admin_url};

const ADMIN: Auth<'static> = Auth::AdminKey(ADMIN_KEY);

/// A tenant made through the admin API on `default`.
struct Made {
    id: String,
    token: String,
    view: Value,
}

async fn make(server: &common::Server, env: &PgEnv, name: &str, isolation: &str) -> Made {
    let (id, token) = make_on_default(server, env, name, isolation, 5).await;
    let view = tenant(server, &id).await;
    Made { id, token, view }
}

/// Rows and an MD5 of the tenant's companies (in id order), read directly on a server.
async fn companies_sum(url: &str, view: &Value) -> (i64, String) {
    let mut conn = connect(url).await;
    let table = match view["placement"]["schema"].as_str() {
        Some(schema) if view["isolation"] == "schema" => format!("\"{schema}\".companies"),
        _ => "companies".to_owned(),
    };
    let filter = if view["isolation"] == "shared" {
        "WHERE c.tenant_id = $1::uuid"
    } else {
        "WHERE $1::text IS NOT NULL"
    };
    let sum: (i64, String) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*), coalesce(md5(string_agg(c::text, E'\\n' ORDER BY c.id::text COLLATE \"C\")), '') \
         FROM {table} c {filter}"
    )))
    .bind(view["id"].as_str().unwrap())
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let _ = conn.close().await;
    sum
}

/// Whether the tenant's own storage exists on a server (database, or schema in it; for shared
/// tenants, whether it has rows in the shared companies table).
async fn storage_exists(url_of: impl Fn(&str) -> String, view: &Value) -> bool {
    let database = view["placement"]["database"].as_str().unwrap();
    let mut postgres = connect(&url_of("postgres")).await;
    let db_exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(database)
            .fetch_one(&mut postgres)
            .await
            .unwrap();
    let _ = postgres.close().await;
    if !db_exists {
        return false;
    }
    match view["isolation"].as_str().unwrap() {
        "database" => true,
        "schema" => {
            let mut conn = connect(&url_of(database)).await;
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                    .bind(view["placement"]["schema"].as_str().unwrap())
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
            let _ = conn.close().await;
            exists
        }
        _ => companies_sum(&url_of(database), view).await.0 > 0,
    }
}

/// Sessions open on a database of a server.
async fn sessions(url_of: impl Fn(&str) -> String, database: &str) -> i64 {
    let mut conn = connect(&url_of("postgres")).await;
    let n = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = $1")
        .bind(database)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let _ = conn.close().await;
    n
}

/// Makes the grace period of the tenant's last move over now (as if it had passed).
async fn end_grace(registry: &mut PgConnection, id: &str) {
    sqlx::query(
        "UPDATE tm_tenant_moves SET drop_after = now() - interval '1 second' \
         WHERE tenant_id = $1::uuid AND state = 'switched'",
    )
    .bind(id)
    .execute(registry)
    .await
    .unwrap();
}

#[tokio::test]
async fn tenants_move_between_servers_resuming_after_a_kill() {
    let pg2 = PrivatePostgres::start();
    let env = PgEnv::new().await;
    let shared_admin = postgres_admin_url().await;
    let servers = format!("default={shared_admin} pg2={}", pg2.admin_url());
    let settings = [
        ("TENANT_SERVERS", servers.as_str()),
        ("MOVE_DRAIN_MS", "200"),
        ("MOVE_GRACE_SECONDS", "3600"),
        ("MOVE_RETRY_AFTER_SECONDS", "7"),
    ];
    let a = env.server(&settings);
    let b = env.server(&settings);
    let url_of = |server: &str| {
        let pg2 = pg2.admin_url();
        let shared_admin = shared_admin.clone();
        let server = server.to_owned();
        move |database: &str| -> String {
            let mut url =
                url::Url::parse(if server == "pg2" { &pg2 } else { &shared_admin }).unwrap();
            url.set_path(database);
            url.to_string()
        }
    };
    let cli = |args: &[&str], extra: &[(&str, &str)]| {
        let mut cmd = env.cli(args);
        cmd.envs(settings.iter().copied())
            .envs(extra.iter().copied());
        cmd
    };
    let mut registry = env.registry().await;

    let d = make(&a, &env, "movd", "database").await;
    let s = make(&a, &env, "movs", "schema").await;
    let r = make(&a, &env, "movr", "shared").await;
    let stay = make(&a, &env, "stay", "shared").await;
    for made in [&d, &s, &r] {
        assert_eq!(made.view["placement"]["server"], "default", "{}", made.view);
    }

    // Refusals name their field.
    let path = format!("/api/admin/tenants/{}/move", d.id);
    let r1 = a.post(&path, ADMIN, &json!({ "server": "default" })).await;
    assert_eq!(
        (r1.status, code(&r1)),
        (StatusCode::BAD_REQUEST, "invalid_input".into())
    );
    assert_eq!(
        r1.json::<Value>().unwrap()["error"]["field"],
        "server",
        "{}",
        text(&r1)
    );
    let r2 = a.post(&path, ADMIN, &json!({ "server": "nowhere" })).await;
    assert_eq!(r2.status, StatusCode::BAD_REQUEST, "{}", text(&r2));
    assert_eq!(r2.json::<Value>().unwrap()["error"]["field"], "server");
    let r3 = a
        .post(
            &path,
            ADMIN,
            &json!({ "server": "pg2", "database": "other" }),
        )
        .await;
    assert_eq!(
        r3.json::<Value>().unwrap()["error"]["field"],
        "database",
        "{}",
        text(&r3)
    );
    let suspend = a
        .post(
            &format!("/api/admin/tenants/{}/suspend", stay.id),
            ADMIN,
            &json!({ "reason": "test" }),
        )
        .await;
    assert!(suspend.status.is_success(), "{}", text(&suspend));
    let r4 = a
        .post(
            &format!("/api/admin/tenants/{}/move", stay.id),
            ADMIN,
            &json!({ "server": "pg2" }),
        )
        .await;
    assert_eq!(r4.status, StatusCode::CONFLICT, "{}", text(&r4));
    assert_eq!(r4.json::<Value>().unwrap()["error"]["field"], "status");
    let resumed = a
        .post(
            &format!("/api/admin/tenants/{}/resume", stay.id),
            ADMIN,
            &json!({}),
        )
        .await;
    assert!(resumed.status.is_success(), "{}", text(&resumed));
    let stay_before = companies_sum(
        &url_of("default")(stay.view["placement"]["database"].as_str().unwrap()),
        &stay.view,
    )
    .await;

    // --- database tenant: tenant-cli stalls after `copied`, is killed, and is run again ---
    let d_db = d.view["placement"]["database"].as_str().unwrap().to_owned();
    // Both instances serve (and cache) the tenant from `default` first.
    for server in [&a, &b] {
        let r = server.get("/api/companies", Auth::Bearer(&d.token)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    }
    let mut stalled = cli(
        &["tenants", "move", &d.id, "--to", "pg2", "--wait"],
        &[("MOVE_FAULT_STALL_AFTER", "copied")],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    wait_for_step(&mut registry, &d.id, "copied", &mut stalled).await;
    assert_eq!(status_of(&mut registry, &d.id).await, "moving");

    // Paused: writes answer 503 + Retry-After on both instances; reads go on.
    for server in [&a, &b] {
        let w = server
            .post(
                "/api/companies",
                Auth::Bearer(&d.token),
                &json!({ "name": "during" }),
            )
            .await;
        assert_eq!(w.status, StatusCode::SERVICE_UNAVAILABLE, "{}", text(&w));
        assert_eq!(code(&w), "tenant_moving");
        assert_eq!(w.headers.get(http::header::RETRY_AFTER).unwrap(), "7");
        let read = server.get("/api/companies", Auth::Bearer(&d.token)).await;
        assert_eq!(read.status, StatusCode::OK, "{}", text(&read));
    }
    // Starting another move of a moving tenant is refused.
    let again = a.post(&path, ADMIN, &json!({ "server": "pg2" })).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", text(&again));
    assert_eq!(again.json::<Value>().unwrap()["error"]["field"], "status");
    // A row reaches the source after the copy (a write already in flight at the pause, which
    // the fence's read-only default does not stop): the resumed move must notice and carry it
    // over.
    let mut source = connect(&url_of("default")(&d_db)).await;
    sqlx::query("SET default_transaction_read_only = off")
        .execute(&mut source)
        .await
        .unwrap();
    sqlx::query("INSERT INTO companies (id, name) VALUES (gen_random_uuid(), 'late write')")
        .execute(&mut source)
        .await
        .unwrap();
    let _ = source.close().await;
    let before = companies_sum(&url_of("default")(&d_db), &d.view).await;
    assert_eq!(before.0, 6);

    stalled.kill().unwrap();
    let _ = stalled.wait();
    assert_eq!(status_of(&mut registry, &d.id).await, "moving");
    assert_eq!(tenant(&a, &d.id).await["placement"]["server"], "default");

    // The same command resumes the move and completes it.
    let out = cli(&["tenants", "move", &d.id, "--to", "pg2", "--wait"], &[])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (done, state) = move_row(&mut registry, &d.id).await.unwrap();
    assert_eq!(state, "switched", "{done:?}");
    assert_eq!(
        done,
        [
            "paused", "drained", "copied", "verified", "switched", "resumed"
        ]
    );
    assert_eq!(status_of(&mut registry, &d.id).await, "active");
    let d_after = tenant(&a, &d.id).await;
    assert_eq!(d_after["placement"]["server"], "pg2");
    assert_eq!(d_after["placement"]["database"], d_db);
    // Identical data, no row lost, none duplicated.
    assert_eq!(companies_sum(&url_of("pg2")(&d_db), &d_after).await, before);

    // Served from pg2 by both instances (the second one's cache saw the new placement).
    // An instance reached by the switch's invalidation a moment later meets the fenced old
    // storage meanwhile: a retryable 503, never a write to the old storage.
    for (i, server) in [&a, &b].into_iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(10);
        let w = loop {
            let w = server
                .post(
                    "/api/companies",
                    Auth::Bearer(&d.token),
                    &json!({ "name": format!("after {i}") }),
                )
                .await;
            if w.status != StatusCode::SERVICE_UNAVAILABLE || Instant::now() > deadline {
                break w;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(w.status, StatusCode::CREATED, "{}", text(&w));
    }
    let list = b.get_json("/api/companies", Auth::Bearer(&d.token)).await;
    assert!(list.to_string().contains("after 0"), "{list}");
    assert!(list.to_string().contains("late write"), "{list}");
    assert_eq!(companies_sum(&url_of("pg2")(&d_db), &d_after).await.0, 8);
    assert_eq!(
        companies_sum(&url_of("default")(&d_db), &d.view).await,
        before
    );
    assert!(
        sessions(url_of("pg2"), &d_db).await > 0,
        "no session on pg2"
    );
    assert_eq!(
        sessions(url_of("default"), &d_db).await,
        0,
        "sessions left on default"
    );

    // The old storage stays for the grace period, then goes.
    let finish = cli(&["tenants", "move", &d.id, "--finish"], &[])
        .output()
        .unwrap();
    assert!(
        finish.status.success(),
        "{}",
        String::from_utf8_lossy(&finish.stderr)
    );
    assert!(
        storage_exists(url_of("default"), &d.view).await,
        "dropped before the grace"
    );
    end_grace(&mut registry, &d.id).await;
    let finish = cli(&["tenants", "move", &d.id, "--finish"], &[])
        .output()
        .unwrap();
    assert!(
        finish.status.success(),
        "{}",
        String::from_utf8_lossy(&finish.stderr)
    );
    assert!(
        !storage_exists(url_of("default"), &d.view).await,
        "old storage kept"
    );
    assert!(storage_exists(url_of("pg2"), &d_after).await);
    assert_eq!(move_row(&mut registry, &d.id).await.unwrap().1, "completed");

    // --- schema tenant: through the admin route, run by the server ---
    let s_before = companies_sum(
        &url_of("default")(s.view["placement"]["database"].as_str().unwrap()),
        &s.view,
    )
    .await;
    let started = a
        .post(
            &format!("/api/admin/tenants/{}/move", s.id),
            ADMIN,
            &json!({ "server": "pg2" }),
        )
        .await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", text(&started));
    let started: Value = started.json().unwrap();
    assert_eq!(started["to"]["server"], "pg2");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status = a
            .get_json(&format!("/api/admin/tenants/{}/move", s.id), ADMIN)
            .await;
        if status["state"] == "switched" {
            break;
        }
        assert!(Instant::now() < deadline, "schema move stuck: {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let s_after = tenant(&a, &s.id).await;
    assert_eq!(s_after["placement"]["server"], "pg2");
    let s_db = s_after["placement"]["database"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        companies_sum(&url_of("pg2")(&s_db), &s_after).await,
        s_before
    );
    let w = b
        .post(
            "/api/companies",
            Auth::Bearer(&s.token),
            &json!({ "name": "schema after" }),
        )
        .await;
    assert_eq!(w.status, StatusCode::CREATED, "{}", text(&w));
    assert_eq!(
        companies_sum(&url_of("pg2")(&s_db), &s_after).await.0,
        s_before.0 + 1
    );

    // --- shared tenant: tenant-cli, the other shared tenant left alone ---
    let r_db = r.view["placement"]["database"].as_str().unwrap().to_owned();
    let r_before = companies_sum(&url_of("default")(&r_db), &r.view).await;
    let out = cli(&["tenants", "move", &r.id, "--to", "pg2", "--wait"], &[])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r_after = tenant(&a, &r.id).await;
    assert_eq!(r_after["placement"]["server"], "pg2");
    assert_eq!(
        companies_sum(&url_of("pg2")(&r_db), &r_after).await,
        r_before
    );
    let w = a
        .send(
            Method::POST,
            "/api/companies",
            Auth::Bearer(&r.token),
            Some(&json!({ "name": "shared after" })),
        )
        .await;
    assert_eq!(w.status, StatusCode::CREATED, "{}", text(&w));
    assert_eq!(
        companies_sum(&url_of("pg2")(&r_db), &r_after).await.0,
        r_before.0 + 1
    );
    end_grace(&mut registry, &r.id).await;
    let finish = cli(&["tenants", "move", &r.id, "--finish"], &[])
        .output()
        .unwrap();
    assert!(
        finish.status.success(),
        "{}",
        String::from_utf8_lossy(&finish.stderr)
    );
    assert_eq!(companies_sum(&url_of("default")(&r_db), &r.view).await.0, 0);
    assert_eq!(
        companies_sum(&url_of("default")(&r_db), &stay.view).await,
        stay_before,
        "another shared tenant's rows were touched"
    );

    drop(a);
    drop(b);
    let _ = registry.close().await;
}
