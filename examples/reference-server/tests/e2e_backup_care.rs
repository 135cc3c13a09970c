//! Unattended backups on the real Postgres with the real `pg_dump`/`pg_restore`: the plan
//! scheduler run by two server instances backs up exactly the due tenants once and prunes to
//! the plan's retention; the prune route (and its dry run); restore tests that pass on good
//! backups and fail naming the table (recorded counts changed) or the checksum (artifact
//! changed), their scratch databases gone afterwards; JSON errors naming the field; and the
//! periodic drift check refreshing the drift gauge.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::pg::PgEnv;
use common::{ADMIN_KEY, Server, TempDir, assert_error, text};
use http::{Method, StatusCode};
use reference_server::http_client::Auth;
use serde_json::{Value, json};
use sqlx::Connection;

const ADMIN: Auth<'static> = Auth::AdminKey(ADMIN_KEY);

async fn call(
    server: &Server,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> (StatusCode, Value) {
    let r = server.send(method, path, ADMIN, body).await;
    let json = r
        .json::<Value>()
        .unwrap_or_else(|_| panic!("{path}: {}", text(&r)));
    (r.status, json)
}

/// Backup ids of a tenant, newest first.
async fn backups(server: &Server, tenant: &str) -> Vec<String> {
    let list = server
        .get_json(&format!("/api/admin/tenants/{tenant}/backups"), ADMIN)
        .await;
    list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{list}"))
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Artifacts of a tenant in the local store.
fn artifacts(dir: &Path, tenant: &str) -> usize {
    std::fs::read_dir(dir.join(tenant)).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
            .count()
    })
}

/// Restore-test scratch databases that exist now.
async fn scratch_databases(env: &PgEnv) -> Vec<String> {
    let mut conn = env.admin("postgres").await;
    let names = sqlx::query_scalar(
        "SELECT datname::text FROM pg_database WHERE datname LIKE 'tm\\_verify\\_%'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let _ = conn.close().await;
    names
}

/// The sum of a counter (all label sets) in a Prometheus text page.
fn counter(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(series) && !l.starts_with('#'))
        .filter(|l| {
            let rest = &l[series.len()..];
            rest.starts_with(' ') || rest.starts_with('{')
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn backdate(env: &PgEnv, backup: &str, days: i64) {
    let mut conn = env.registry().await;
    sqlx::query(
        "UPDATE tm_backups SET created_at = now() - make_interval(days => $2::int) \
         WHERE id = $1::text::uuid",
    )
    .bind(backup)
    .bind(i32::try_from(days).unwrap())
    .execute(&mut conn)
    .await
    .unwrap();
    let _ = conn.close().await;
}

#[tokio::test]
async fn two_schedulers_back_up_each_due_tenant_once_prune_and_restore_tests_catch_changes() {
    let env = PgEnv::new().await;
    let store = TempDir::new("e2e-backup-care");
    let dir = store.path().to_str().unwrap().to_owned();
    let setup = env.server(&[("BACKUP_DIR", &dir)]);

    // A plan whose tenants are backed up hourly, keeping the newest of the last 3 days.
    let plan = json!({
        "rate": {"limit": 100000, "window_ms": 60000},
        "max_users": 100, "max_storage_bytes": 1_000_000_000u64, "max_connections": 5,
        "backup": {"interval_ms": 3_600_000, "keep_daily": 3, "keep_weekly": 0},
    });
    let (status, answer) = call(&setup, Method::PUT, "/api/admin/plans/hourly", Some(&plan)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let bad_plan = json!({
        "rate": {"limit": 1, "window_ms": 1000}, "max_users": 1, "max_storage_bytes": 1,
        "max_connections": 1, "backup": {"interval_ms": 10, "keep_daily": 1, "keep_weekly": 0},
    });
    let (status, answer) = call(&setup, Method::PUT, "/api/admin/plans/bad", Some(&bad_plan)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["field"], "backup.interval_ms", "{answer}");

    let old = env
        .org_with_companies(&setup, "old", "database", &["A", "B"])
        .await;
    let never = env
        .org_with_companies(&setup, "never", "schema", &["C"])
        .await;
    let free = env
        .org_with_companies(&setup, "free", "shared", &["D"])
        .await;
    let fresh = env
        .org_with_companies(&setup, "fresh", "database", &["E", "F", "G"])
        .await;
    for org in [&old, &never, &fresh] {
        let (status, answer) = call(
            &setup,
            Method::PUT,
            &format!("/api/admin/tenants/{}/plan", org.id),
            Some(&json!({"plan": "hourly"})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    // `old`: two backups taken 2 and 10 days ago (due; one outside the retention). `fresh`: a
    // backup just taken (not due). `never`: none (due). `free`: no schedule.
    for days in [2, 10] {
        let (status, taken) = call(
            &setup,
            Method::POST,
            &format!("/api/admin/tenants/{}/backups", old.id),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{taken}");
        backdate(&env, taken["id"].as_str().unwrap(), days).await;
    }
    let (status, taken) = call(
        &setup,
        Method::POST,
        &format!("/api/admin/tenants/{}/backups", fresh.id),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{taken}");
    let fresh_backup = taken["id"].as_str().unwrap().to_owned();
    assert_eq!(artifacts(store.path(), &old.id), 2);

    // Two instances, each ticking every 200 ms.
    let scheduled = [
        ("BACKUP_DIR", dir.as_str()),
        ("BACKUP_SCHEDULE_INTERVAL_MS", "200"),
    ];
    let a = env.server(&scheduled);
    let b = env.server(&scheduled);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let done = backups(&setup, &never.id).await.len() == 1
            && backups(&setup, &old.id).await.len() == 2;
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the scheduler did not back up the due tenants"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Many more ticks of both instances: nothing more is due.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let old_backups = backups(&setup, &old.id).await;
    assert_eq!(old_backups.len(), 2, "{old_backups:?}");
    assert_eq!(backups(&setup, &never.id).await.len(), 1);
    assert_eq!(backups(&setup, &fresh.id).await, vec![fresh_backup.clone()]);
    assert!(backups(&setup, &free.id).await.is_empty());
    // The artifacts: one per backup; the 10-day-old one was pruned with its record.
    assert_eq!(artifacts(store.path(), &old.id), 2);
    assert_eq!(artifacts(store.path(), &never.id), 1);
    assert_eq!(artifacts(store.path(), &fresh.id), 1);
    assert_eq!(artifacts(store.path(), &free.id), 0);
    let mut ok = 0.0;
    for server in [&a, &b] {
        let metrics = text(&server.get("/metrics", Auth::None).await);
        ok += counter(&metrics, "tenant_backups_scheduled_total");
    }
    assert_eq!(ok, 2.0, "two scheduled backups across both instances");
    drop(a);
    drop(b);

    // Prune on demand: a dry run names the 2-day-old backup and deletes nothing.
    let prune = format!("/api/admin/tenants/{}/backups/prune", old.id);
    let rule = json!({"daily": 1, "weekly": 0, "dry_run": true});
    let (status, dry) = call(&setup, Method::POST, &prune, Some(&rule)).await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["kept"].as_array().unwrap().len(), 1, "{dry}");
    assert_eq!(dry["deleted"][0]["id"], old_backups[1].as_str(), "{dry}");
    assert_eq!(backups(&setup, &old.id).await.len(), 2);
    let (status, done) = call(
        &setup,
        Method::POST,
        &prune,
        Some(&json!({"daily": 1, "weekly": 0})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["deleted"][0]["id"], old_backups[1].as_str(), "{done}");
    assert_eq!(backups(&setup, &old.id).await, vec![old_backups[0].clone()]);
    assert_eq!(artifacts(store.path(), &old.id), 1);

    // Restore tests of every tenant's newest backup: all pass; no scratch database is left.
    let (status, report) = call(
        &setup,
        Method::POST,
        "/api/admin/backups/verify",
        Some(&json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["checked"], 3, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    assert_eq!(report["without_backup"], json!([free.id]), "{report}");
    let fresh_result = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["backup_id"] == fresh_backup.as_str())
        .unwrap();
    assert!(fresh_result["tables"].as_u64().unwrap() >= 1, "{report}");
    assert!(scratch_databases(&env).await.is_empty());
    let out = env
        .cli(&["backups", "verify", "--sample", "2"])
        .env("BACKUP_DIR", &dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        printed["checked"].as_u64().unwrap()
            + printed["without_backup"].as_array().unwrap().len() as u64,
        2
    );

    // The recorded count of one table changed: the restore test fails naming that table.
    let mut conn = env.registry().await;
    let recorded: Value =
        sqlx::query_scalar("SELECT table_rows FROM tm_backups WHERE id = $1::text::uuid")
            .bind(&fresh_backup)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(recorded["public.companies"], 3, "{recorded}");
    sqlx::query(
        "UPDATE tm_backups SET table_rows = jsonb_set(table_rows, '{public.companies}', '4') \
         WHERE id = $1::text::uuid",
    )
    .bind(&fresh_backup)
    .execute(&mut conn)
    .await
    .unwrap();
    let _ = conn.close().await;
    let one = json!({"backup_id": fresh_backup});
    let (status, report) = call(
        &setup,
        Method::POST,
        "/api/admin/backups/verify",
        Some(&one),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["failed"], 1, "{report}");
    let mismatched = &report["results"][0]["mismatched"];
    assert_eq!(
        mismatched,
        &json!([{"table": "public.companies", "recorded": 4, "restored": 3}]),
        "{report}"
    );
    assert!(scratch_databases(&env).await.is_empty());

    // The artifact changed: the restore test fails, and nothing is restored.
    let key = backups(&setup, &never.id).await[0].clone();
    let path = store.path().join(&never.id).join(format!("{key}.dump"));
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let (status, report) = call(
        &setup,
        Method::POST,
        "/api/admin/backups/verify",
        Some(&json!({"backup_id": key})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["failed"], 1, "{report}");
    assert!(
        report["results"][0]["error"]
            .as_str()
            .unwrap()
            .contains("checksum"),
        "{report}"
    );
    assert!(scratch_databases(&env).await.is_empty());
    let metrics = text(&setup.get("/metrics", Auth::None).await);
    assert!(
        metrics.contains("tenant_backup_verify_failed 1"),
        "{metrics}"
    );

    // Bad input: JSON errors naming the field.
    for (path, body, field) in [
        (prune.as_str(), json!({"daily": "seven"}), "daily"),
        (prune.as_str(), json!({"weekly": 521}), "weekly"),
        (prune.as_str(), json!({"daily": 0, "weekly": 0}), "daily"),
        (prune.as_str(), json!({"dry_run": "yes"}), "dry_run"),
        (
            "/api/admin/tenants/not-a-uuid/backups/prune",
            json!({}),
            "id",
        ),
        ("/api/admin/backups/verify", json!({"sample": 0}), "sample"),
        (
            "/api/admin/backups/verify",
            json!({"sample": "all"}),
            "sample",
        ),
        (
            "/api/admin/backups/verify",
            json!({"backup_id": 7}),
            "backup_id",
        ),
        (
            "/api/admin/backups/verify",
            json!({"backup_id": "nope"}),
            "backup_id",
        ),
        ("/api/admin/backups/verify", json!({"bogus": 1}), "body"),
    ] {
        let r = setup.send(Method::POST, path, ADMIN, Some(&body)).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_input");
        let answer: Value = r.json().unwrap();
        assert_eq!(answer["error"]["field"], field, "{path} {body}: {answer}");
    }
    let r = setup
        .send(
            Method::POST,
            "/api/admin/backups/verify",
            Auth::None,
            Some(&json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let openapi = setup.get_json("/api/openapi.json", Auth::None).await;
    assert!(openapi["paths"]["/api/admin/backups/verify"]["post"].is_object());
    assert!(openapi["paths"]["/api/admin/tenants/{id}/backups/prune"]["post"].is_object());
}

#[tokio::test]
async fn the_periodic_drift_check_updates_the_gauge_after_a_drift_is_introduced() {
    let env = PgEnv::new().await;
    let server = env.server(&[("DRIFT_CHECK_INTERVAL_MS", "300")]);
    let (id, _, _) = env.register(&server, "drifty", "schema").await;
    let gauge = |n: u32| format!("tenant_manager_schema_drift_tenants {n}");
    let wait_for = |want: String| {
        let server = &server;
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let metrics = text(&server.get("/metrics", Auth::None).await);
                if metrics.contains(&want) {
                    return;
                }
                assert!(Instant::now() < deadline, "no `{want}` in {metrics}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    wait_for(gauge(0)).await;

    // By hand, an index the migrations never made; nobody calls the drift route.
    let mut conn = env.registry().await;
    let (database, schema): (String, Option<String>) = sqlx::query_as(
        "SELECT database_name, schema_name FROM tm_tenants WHERE id = $1::text::uuid",
    )
    .bind(&id)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let _ = conn.close().await;
    let mut conn = env.admin(&database).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE INDEX by_hand ON \"{}\".companies (domain)",
        schema.unwrap()
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    let _ = conn.close().await;
    wait_for(gauge(1)).await;
}
