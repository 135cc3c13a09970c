//! Fault injection against real processes on loopback, bounded in time:
//!
//! - Postgres backends terminated mid-traffic: while clients hit tenant routes of every
//!   isolation, the server's Postgres sessions are killed (`pg_terminate_backend`) again and
//!   again. No answer is a 500, no request runs past its timeout, and afterwards every tenant
//!   is served again (reads and writes).
//! - The server SIGKILLed mid-backup: nothing half-written is catalogued or listed by the
//!   store, the tenant still works, and the backup can be taken again (and restored) by the
//!   next server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::isolation::Org;
use common::pg::PgEnv;
use common::{ADMIN_KEY, TempDir, email, text};
use http::{Method, StatusCode};
use reference_server::http_client::{Auth, HttpClient};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use tenant_manager::core::BackupStore;
use tenant_manager::core::backup_store::ObjectBackupStore;

/// The server's own limit on a request.
const REQUEST_TIMEOUT_MS: &str = "5000";
/// The clients' limit: past the server's, so a request that hangs shows as a client error.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long recovery may take: a hang limit, not a measurement.
const RECOVERY: Duration = Duration::from_secs(30);

async fn register(server: &common::Server, env: &PgEnv, name: &str, isolation: &str) -> Org {
    let (id, token, _) = env.register(server, name, isolation).await;
    Org { id, token }
}

/// A database-isolated tenant, created by an operator (`tenant-cli tenants create`), and its
/// owner's token from a login.
async fn create_by_operator(server: &common::Server, env: &PgEnv, name: &str) -> Org {
    let owner = email(name);
    let out = env
        .cli(&[
            "tenants",
            "create",
            "--name",
            &format!("Org {name}"),
            "--admin-email",
            &owner,
            "--slug",
            &env.slug(name),
            "--isolation",
            "database",
        ])
        .env("TENANT_ADMIN_PASSWORD", "Test123!")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tenant: Value = serde_json::from_slice(&out.stdout).expect("tenant JSON");
    let r = server.login(&owner, "Test123!").await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    let token = r.json::<Value>().unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    Org {
        id: tenant["id"].as_str().unwrap().to_owned(),
        token,
    }
}

/// Terminates every Postgres session of the deployment (global database, tenant databases,
/// tenant logins) but this one; returns how many.
async fn terminate_backends(conn: &mut PgConnection, global_db: &str, tag: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE pid <> pg_backend_pid() AND backend_type = 'client backend' \
           AND (datname = $1 OR strpos(datname, $2) > 0 OR strpos(usename, $2) > 0)",
    )
    .bind(global_db)
    .bind(tag)
    .fetch_one(conn)
    .await
    .expect("terminate")
}

#[tokio::test]
async fn postgres_backends_terminated_mid_traffic_give_no_500_and_full_recovery() {
    let env = PgEnv::new().await;
    let server = env.server(&[("REQUEST_TIMEOUT_MS", REQUEST_TIMEOUT_MS)]);
    let orgs = vec![
        register(&server, &env, "flt_schema", "schema").await,
        register(&server, &env, "flt_shared", "shared").await,
        create_by_operator(&server, &env, "flt_db").await,
    ];
    for org in &orgs {
        let r = server
            .post(
                "/api/companies",
                Auth::Bearer(&org.token),
                &json!({"name": "Before", "domain": "before.example.com"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
    }

    let statuses: Arc<Mutex<BTreeMap<u16, usize>>> = Arc::default();
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for (i, org) in orgs.iter().enumerate() {
        for worker in 0..2 {
            let client = HttpClient::new(&server.base_url)
                .unwrap()
                .with_timeout(CLIENT_TIMEOUT);
            let token = org.token.clone();
            let (statuses, failures, stop, sent) = (
                statuses.clone(),
                failures.clone(),
                stop.clone(),
                sent.clone(),
            );
            clients.push(tokio::spawn(async move {
                let mut n = 0u32;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let answer = if n.is_multiple_of(4) {
                        let body = json!({"name": format!("C{i}-{worker}-{n}")});
                        client
                            .post("/api/companies", Auth::Bearer(&token), &body)
                            .await
                    } else {
                        client
                            .get("/api/companies?limit=20", Auth::Bearer(&token))
                            .await
                    };
                    sent.fetch_add(1, Ordering::SeqCst);
                    match answer {
                        Ok(r) => {
                            *statuses
                                .lock()
                                .unwrap()
                                .entry(r.status.as_u16())
                                .or_default() += 1;
                            if r.status.is_server_error()
                                && r.status != StatusCode::SERVICE_UNAVAILABLE
                            {
                                failures
                                    .lock()
                                    .unwrap()
                                    .push(format!("{} {}", r.status, text(&r)));
                            }
                        }
                        Err(e) => failures.lock().unwrap().push(format!("no answer: {e}")),
                    }
                }
            }));
        }
    }

    let global_url = env.global_url();
    let global_db = global_url
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap();
    let mut admin = env.admin("postgres").await;
    let mut terminated = 0;
    for _ in 0..16 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        terminated += terminate_backends(&mut admin, global_db, &env.tag).await;
    }
    let _ = admin.close().await;
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.unwrap();
    }
    let statuses = statuses.lock().unwrap().clone();
    let failures = failures.lock().unwrap().clone();
    eprintln!(
        "sent {} requests, terminated {terminated} backends, statuses {statuses:?}",
        sent.load(Ordering::SeqCst)
    );
    assert!(terminated > 0, "no backend of the server was terminated");
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(
        statuses.keys().all(|s| [200, 201, 503].contains(s)),
        "{statuses:?}"
    );

    // Full recovery: every tenant is read and written again.
    for org in &orgs {
        let deadline = Instant::now() + RECOVERY;
        loop {
            let r = server
                .get("/api/companies?limit=100", Auth::Bearer(&org.token))
                .await;
            if r.status == StatusCode::OK {
                break;
            }
            assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", text(&r));
            assert!(
                Instant::now() < deadline,
                "tenant {} never recovered",
                org.id
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for n in 0..5 {
            let r = server
                .post(
                    "/api/companies",
                    Auth::Bearer(&org.token),
                    &json!({"name": format!("After {n}")}),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
            let r = server
                .get("/api/companies?limit=100", Auth::Bearer(&org.token))
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
        }
    }
}

/// A server process this test can SIGKILL.
struct Killable {
    child: Child,
    base_url: String,
}

impl Killable {
    fn start(env: &PgEnv, overrides: &[(&str, &str)]) -> Self {
        let vars = env.vars();
        let mut all: Vec<(&str, &str)> =
            vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        all.extend_from_slice(overrides);
        let mut child = common::command(&all)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn reference-server");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && v["message"] == "serving the API"
                {
                    let _ = tx.send(v["addr"].as_str().unwrap_or_default().to_owned());
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server did not listen in time");
        Self {
            child,
            base_url: format!("http://{addr}"),
        }
    }

    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }
}

impl Drop for Killable {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sessions of `pg_dump`/`pg_restore` (`PGAPPNAME=tenant-manager-backup`) on `database`.
async fn backup_sessions(conn: &mut PgConnection, database: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE application_name = 'tenant-manager-backup' AND datname = $1",
    )
    .bind(database)
    .fetch_one(conn)
    .await
    .expect("sessions")
}

#[tokio::test]
async fn a_server_killed_mid_backup_leaves_nothing_half_written_and_the_backup_is_retried() {
    let env = PgEnv::new().await;
    let backups = TempDir::new("faults-backup");
    let backup_dir = backups.path().to_str().unwrap().to_owned();
    let server = env.server(&[("BACKUP_DIR", &backup_dir)]);
    let org = register(&server, &env, "flt_big", "schema").await;
    drop(server);
    let uuid: uuid::Uuid = org.id.parse().unwrap();
    let mut reg = env.registry().await;
    let (database, schema): (String, String) =
        sqlx::query_as("SELECT database_name, schema_name FROM tm_tenants WHERE id = $1")
            .bind(uuid)
            .fetch_one(&mut reg)
            .await
            .unwrap();
    // Enough rows that pg_dump runs for a few seconds.
    let rows = 400_000i64;
    let mut admin = env.admin(&database).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO \"{schema}\".companies (name, domain) \
         SELECT md5(i::text) || md5((i * 7)::text) || md5((i * 13)::text), md5(i::text) \
         FROM generate_series(1, {rows}) i"
    )))
    .execute(&mut admin)
    .await
    .unwrap();

    // The victim's temporary directory (where backups are staged) is this test's own.
    let tmp = TempDir::new("faults-tmp");
    let tmp_dir = tmp.path().to_str().unwrap().to_owned();
    let mut victim = Killable::start(&env, &[("BACKUP_DIR", &backup_dir), ("TMPDIR", &tmp_dir)]);
    let client = HttpClient::new(&victim.base_url)
        .unwrap()
        .with_timeout(Duration::from_secs(120));
    let path = format!("/api/admin/tenants/{}/backups", org.id);
    let request = tokio::spawn(async move {
        client
            .send(Method::POST, &path, Auth::AdminKey(ADMIN_KEY), None)
            .await
    });
    let mut postgres = env.admin("postgres").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while backup_sessions(&mut postgres, &database).await == 0 {
        assert!(
            !request.is_finished(),
            "the backup finished before it could be interrupted"
        );
        assert!(Instant::now() < deadline, "the backup never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    victim.kill();
    let answer = request.await.unwrap();
    assert!(
        answer
            .as_ref()
            .map_or(true, |r| r.status != StatusCode::CREATED),
        "the backup completed before the kill"
    );

    // The interrupted pg_dump stops with the server (its output went through the server):
    // its session ends, and what it staged is a fraction of a whole dump.
    let deadline = Instant::now() + Duration::from_secs(60);
    while backup_sessions(&mut postgres, &database).await > 0 {
        assert!(Instant::now() < deadline, "pg_dump outlived the server");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let staged = bytes_under(tmp.path());
    // The login the killed server made for its backup is left to the product's sweep (an hour
    // later); this test drops it now.
    drop_operation_logins(&mut postgres, &env.tag).await;
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        1,
        "the killed server's work directory"
    );

    // Nothing half-written is catalogued or listed by the store.
    let catalogued = || async {
        let mut reg = env.registry().await;
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT sha256, size_bytes FROM tm_backups WHERE tenant_id = $1")
                .bind(uuid)
                .fetch_all(&mut reg)
                .await
                .unwrap();
        let _ = reg.close().await;
        rows
    };
    assert!(catalogued().await.is_empty());
    let store = ObjectBackupStore::local(backups.path());
    assert!(store.list("").await.unwrap().is_empty());

    // The next server serves the tenant and takes the backup.
    let server = env.server(&[("BACKUP_DIR", &backup_dir), ("TMPDIR", &tmp_dir)]);
    let r = server
        .get("/api/companies?limit=5", Auth::Bearer(&org.token))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    let r = server
        .send(
            Method::POST,
            &format!("/api/admin/tenants/{}/backups", org.id),
            Auth::AdminKey(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
    let record: Value = r.json().unwrap();
    let rows_now = catalogued().await;
    assert_eq!(rows_now.len(), 1);
    assert_eq!(rows_now[0].0, record["sha256"].as_str().unwrap());
    let listed = store.list("").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].sha256, rows_now[0].0);
    // Its backup swept what the killed one staged, and left nothing of its own.
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "work files left: {left:?}");
    let whole = record["size_bytes"].as_u64().unwrap();
    eprintln!("staged by the killed server: {staged} bytes; a whole dump: {whole} bytes");
    assert!(
        staged < whole / 2,
        "the interrupted pg_dump ran on after the server died ({staged} of {whole} bytes)"
    );

    // And it restores: the rows added since are gone, the backed-up ones are back.
    let r = server
        .post(
            "/api/companies",
            Auth::Bearer(&org.token),
            &json!({"name": "After the backup"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
    let out = env
        .cli(&[
            "restore",
            record["id"].as_str().unwrap(),
            "--into",
            &org.id,
            "--source",
            &backup_dir,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM \"{schema}\".companies"
    )))
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(count, rows);
    let r = server
        .get("/api/companies?limit=5", Auth::Bearer(&org.token))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));

    let _ = admin.close().await;
    let _ = postgres.close().await;
    let _ = reg.close().await;
}

/// Bytes of the files under `dir`, recursively.
fn bytes_under(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => bytes_under(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

/// Drops the logins made for backups of this deployment's tenants that a killed server left
/// (the product drops them once they are an hour old).
async fn drop_operation_logins(conn: &mut PgConnection, tag: &str) {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT r.rolname::text FROM pg_roles r JOIN pg_auth_members m ON m.member = r.oid \
         JOIN pg_roles t ON t.oid = m.roleid \
         WHERE r.rolname LIKE 'tm\\_backup\\_%' AND strpos(t.rolname, $1) > 0",
    )
    .bind(tag)
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    for name in names {
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP OWNED BY \"{name}\"; DROP ROLE IF EXISTS \"{name}\""
        )))
        .execute(&mut *conn)
        .await;
    }
}
