//! The end-to-end bench's single-tenant peer: `baseline-server` on a fresh database answers
//! everything `tenant-cli loadtest --baseline` sends, without a token, and keeps the companies
//! in its one schema.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sqlx::Connection;
use tenant_manager_test_support::TestDatabase;

/// The running baseline server; killed on drop.
struct Baseline(Child);

impl Drop for Baseline {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `baseline-server` on `db` and returns it with its base URL.
fn start(db: &TestDatabase) -> (Baseline, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_baseline-server"))
        .env_clear()
        .args([
            "--database-url",
            db.url(),
            "--bind",
            "127.0.0.1:0",
            "--pool-size",
            "4",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn baseline-server");
    let stderr = child.stderr.take().expect("stderr");
    let server = Baseline(child);
    let mut line = String::new();
    BufReader::new(stderr)
        .read_line(&mut line)
        .expect("read the first line");
    let addr = line
        .trim()
        .strip_prefix("baseline-server: serving on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_owned();
    (server, format!("http://{addr}"))
}

#[tokio::test]
async fn the_baseline_answers_the_load_tests_mix_without_a_token() {
    let db = TestDatabase::create().await;
    let (_server, url) = start(&db);
    let report = common::loadtest(
        &url,
        &[
            "--baseline",
            "--tenants",
            "3",
            "--concurrency",
            "4",
            "--duration",
            "2",
        ],
    )
    .await;
    let stdout = report.to_string();
    assert!(
        report["total"]["requests"].as_u64().unwrap() > 20,
        "{stdout}"
    );
    assert_eq!(report["total"]["errors"], 0, "{stdout}");
    for op in [
        "list_companies",
        "create_company",
        "get_tenant",
        "get_company",
    ] {
        let ok = report["operations"][op]["ok"].as_u64().unwrap_or(0);
        assert!(ok > 0, "{op}: {stdout}");
    }
    assert!(report["operations"].get("register (setup)").is_none());

    let created = report["operations"]["create_company"]["ok"]
        .as_u64()
        .unwrap();
    let mut conn = sqlx::PgConnection::connect(db.url()).await.unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM baseline.companies")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let _ = conn.close().await;
    assert_eq!(u64::try_from(rows).unwrap(), created);
}
