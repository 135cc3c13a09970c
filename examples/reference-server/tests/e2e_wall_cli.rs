//! The tenant wall's operations end to end, on the real binaries: a server refuses to start on
//! a deployment whose wall is missing (naming `tenant-cli wall migrate`) or does not accept its
//! `WALL_KEY_ID`; `tenant-cli wall check` exits 1 on such a deployment and 0 once
//! `tenant-cli wall migrate` put every tenant behind the wall; a key rotation
//! (`rotate-key`, instances restarted with the new `WALL_KEY_ID`, `retire-key`, `purge-keys`)
//! keeps the tenants served.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read as _;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::isolation::Org;
use common::pg::PgEnv;
use common::{Server, text};
use http::StatusCode;
use reference_server::http_client::Auth;
use serde_json::{Value, json};
use sqlx::Connection;

/// The names of `org`'s companies, through the API of `server`.
async fn names(server: &Server, org: &Org) -> Vec<String> {
    let r = server.get("/api/companies", Auth::Bearer(&org.token)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    r.json::<Value>().unwrap()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Starts a server of `env` with `overrides` that must refuse to start: its exit code and
/// stderr (killed after 30 s if it does start).
fn refused_start(env: &PgEnv, overrides: &[(&str, &str)]) -> (Option<i32>, String) {
    let vars = env.vars();
    let mut all: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    all.extend_from_slice(overrides);
    let mut child = common::command(&all)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn reference-server");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    (status.and_then(|s| s.code()), stderr)
}

/// Runs `tenant-cli` of `env` with `WALL_KEY_ID=key` and `args`.
fn cli(env: &PgEnv, key: &str, args: &[&str]) -> Output {
    env.cli(args).env("WALL_KEY_ID", key).output().unwrap()
}

fn shown(out: &Output) -> String {
    format!(
        "{:?}\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The JSON report `tenant-cli` printed.
fn report(out: &Output) -> Value {
    assert!(out.status.success(), "{}", shown(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", shown(out)))
}

#[tokio::test]
async fn a_deployment_without_the_wall_is_refused_until_wall_migrate_and_keys_rotate() {
    let env = PgEnv::new().await;
    let server = env.server(&[]);
    let schema = env
        .org_with_companies(&server, "upg_schema", "schema", &["Schema Co"])
        .await;
    let shared = env
        .org_with_companies(&server, "upg_shared", "shared", &["Shared Co"])
        .await;
    drop(server);

    // The layout of a deployment from before the wall: no wall in the shared database (its
    // policies go with it) and the app login a member of the schema tenant's role.
    let role = format!("{}_t_{}", env.tag, env.slug("upg_schema"));
    let app = format!("{}_app", env.tag);
    let mut conn = env.admin(&format!("{}_shared", env.tag)).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA wall CASCADE; DROP SCHEMA wall_private CASCADE; GRANT \"{role}\" TO \"{app}\""
    )))
    .execute(&mut conn)
    .await
    .unwrap();

    let (code, stderr) = refused_start(&env, &[]);
    assert_eq!(code, Some(78), "{stderr}");
    assert!(
        stderr.contains("the tenant wall is not installed"),
        "{stderr}"
    );
    assert!(stderr.contains("tenant-cli wall migrate"), "{stderr}");
    let out = cli(&env, "1", &["wall", "check"]);
    assert_eq!(out.status.code(), Some(1), "{}", shown(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not installed"));

    // The upgrade: every tenant behind the wall, idempotently.
    let done = report(&cli(&env, "1", &["wall", "migrate"]));
    assert_eq!(
        (
            &done["installed"],
            &done["schema_tenants"],
            &done["shared_databases"]
        ),
        (&json!(1), &json!(1), &json!(1)),
        "{done}"
    );
    let again = report(&cli(&env, "1", &["wall", "migrate"]));
    assert_eq!(again["installed"], 0, "{again}");
    report(&cli(&env, "1", &["wall", "check"]));
    let member: bool = sqlx::query_scalar("SELECT pg_has_role($1, $2, 'MEMBER')")
        .bind(&app)
        .bind(&role)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(!member, "the upgrade revokes the app login's membership");
    let _ = conn.close().await;

    let first = env.server(&[]);
    assert_eq!(names(&first, &schema).await, ["Schema Co"]);
    assert_eq!(names(&first, &shared).await, ["Shared Co"]);

    // Rotation: key 2 added, an instance signing with it serves beside one signing with key 1;
    // a key no database knows is refused at start-up.
    let added = report(&cli(&env, "1", &["wall", "rotate-key", "--key-id", "2"]));
    assert_eq!(added["keys_changed"], 1, "{added}");
    let (code, stderr) = refused_start(&env, &[("WALL_KEY_ID", "3")]);
    assert_eq!(code, Some(78), "{stderr}");
    assert!(stderr.contains("wall key 3 is not valid"), "{stderr}");
    let second = env.server(&[("WALL_KEY_ID", "2")]);
    assert_eq!(names(&second, &schema).await, ["Schema Co"]);
    assert_eq!(names(&second, &shared).await, ["Shared Co"]);
    assert_eq!(names(&first, &shared).await, ["Shared Co"]);
    drop(first);

    // Key 1 retired (the signing key cannot be), then purged: only key 2 serves.
    let out = cli(&env, "2", &["wall", "retire-key", "--key-id", "2"]);
    assert_eq!(out.status.code(), Some(5), "{}", shown(&out));
    let retired = report(&cli(
        &env,
        "2",
        &["wall", "retire-key", "--key-id", "1", "--grace", "0s"],
    ));
    assert_eq!(retired["keys_changed"], 1, "{retired}");
    let (code, stderr) = refused_start(&env, &[("WALL_KEY_ID", "1")]);
    assert_eq!(code, Some(78), "{stderr}");
    let purged = report(&cli(&env, "2", &["wall", "purge-keys"]));
    assert_eq!(purged["keys_changed"], 1, "{purged}");
    let check = report(&cli(&env, "2", &["wall", "check"]));
    let keys: Vec<i64> = check["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key_id"].as_i64().unwrap())
        .collect();
    assert_eq!(keys, [2], "{check}");
    assert_eq!(names(&second, &schema).await, ["Schema Co"]);
}
