//! Login floods against the real `reference-server` binary (embedded mode, the default OWASP
//! argon2id parameters): resident memory stays near the idle figure after 1,000 logins, and a
//! flood beyond the hashing capacity is shed with `503` + `Retry-After` instead of queueing.
//!
//! Run with `--nocapture` to see the figures (RSS before and after, logins per second).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Server, code, email, text};
use http::StatusCode;
use reference_server::http_client::{Auth, HttpClient, HttpResponse};
use serde_json::json;

/// Most the resident set may grow between the idle server and the end of the flood.
const MAX_GROWTH_KIB: u64 = 64 * 1024;

/// `VmRSS` of a process, in KiB, from `/proc/<pid>/status`.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// Posts a login through `client`.
async fn login(client: &HttpClient, email: &str) -> HttpResponse {
    client
        .post(
            "/api/auth/login",
            Auth::None,
            &json!({"email": email, "password": "Test123!"}),
        )
        .await
        .expect("POST /api/auth/login")
}

/// The server with the default (OWASP) hashing, and its process id.
fn owasp_server(overrides: &[(&str, &str)]) -> (Server, u32) {
    let mut env = vec![("PASSWORD_HASHING", "")];
    env.extend_from_slice(overrides);
    let server = Server::start(&env);
    let pid = server.pid().expect("pid");
    (server, pid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resident_memory_stays_near_idle_after_a_thousand_logins() {
    let (server, pid) = owasp_server(&[]);
    let mail = email("rss");
    server.register("Rss Org", &mail).await;
    let warm = server.login(&mail, "Test123!").await;
    assert_eq!(warm.status, StatusCode::OK, "{}", text(&warm));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = rss_kib(pid);

    const LOGINS: usize = 1_000;
    const CONCURRENCY: usize = 8;
    let next = Arc::new(AtomicUsize::new(0));
    let sheds = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (client, next, sheds, mail) = (
                server.client.clone(),
                Arc::clone(&next),
                Arc::clone(&sheds),
                mail.clone(),
            );
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < LOGINS {
                    // A shed login (503) is retried, so every one of the 1,000 is hashed.
                    for _ in 0..50 {
                        let r = login(&client, &mail).await;
                        if r.status == StatusCode::OK {
                            break;
                        }
                        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", text(&r));
                        sheds.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let elapsed = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib(pid);
    eprintln!(
        "login flood: RSS idle {} KiB ({} MiB), after {LOGINS} logins {} KiB ({} MiB); \
         {:.1} logins/s over {:.1} s; {} shed and retried",
        idle,
        idle / 1024,
        after,
        after / 1024,
        LOGINS as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64(),
        sheds.load(Ordering::Relaxed)
    );
    assert!(
        after <= idle + MAX_GROWTH_KIB,
        "resident memory grew from {idle} KiB to {after} KiB after {LOGINS} logins"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_beyond_one_hashing_thread_is_shed_with_retry_after() {
    const TIMEOUT: Duration = Duration::from_secs(10);
    let (server, _pid) = owasp_server(&[
        ("PASSWORD_HASH_THREADS", "1"),
        ("PASSWORD_HASH_QUEUE_MS", "200"),
        ("REQUEST_TIMEOUT_MS", "10000"),
    ]);
    let mail = email("shed");
    server.register("Shed Org", &mail).await;
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (client, mail) = (server.client.clone(), mail.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                let r = login(&client, &mail).await;
                (r, started.elapsed())
            })
        })
        .collect();
    let (mut ok, mut shed) = (0, 0);
    for task in tasks {
        let (r, took) = task.await.unwrap();
        assert!(took < TIMEOUT, "a login waited {took:?}");
        match r.status {
            StatusCode::OK => ok += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                shed += 1;
                assert_eq!(code(&r), "backend_unavailable", "{}", text(&r));
                assert!(
                    r.header("retry-after")
                        .is_some_and(|v| v.parse::<u64>().is_ok_and(|s| s >= 1)),
                    "{:?}",
                    r.headers
                );
            }
            status => panic!("unexpected {status}: {}", text(&r)),
        }
    }
    eprintln!("64 concurrent logins on 1 hashing thread: {ok} answered 200, {shed} shed (503)");
    assert!(ok >= 1, "no login got through");
    assert!(shed >= 1, "no login was shed");
    // The server still serves logins once the flood is over.
    let r = server.login(&mail, "Test123!").await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    let unknown = server.login(&email("nobody"), "Test123!").await;
    assert_eq!(
        unknown.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        text(&unknown)
    );
}

#[tokio::test]
async fn repeated_failures_of_one_address_get_429_with_retry_after() {
    let server = Server::start(&[("LOGIN_MAX_FAILURES", "2")]);
    let (victim, bystander) = (email("victim"), email("bystander"));
    server.register("Victim Org", &victim).await;
    server.register("Bystander Org", &bystander).await;
    for _ in 0..2 {
        let r = server.login(&victim, "Wrong123!").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", text(&r));
    }
    // The right password no longer helps, for this address only.
    let r = server.login(&victim, "Test123!").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", text(&r));
    assert_eq!(code(&r), "quota_exceeded");
    assert!(
        r.header("retry-after")
            .is_some_and(|v| v.parse::<u64>().is_ok_and(|s| s >= 1)),
        "{:?}",
        r.headers
    );
    let r = server.login(&bystander, "Test123!").await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    // An unknown address is answered the same way after as many failures.
    let nobody = email("nobody");
    let answers = [
        server.login(&nobody, "Wrong123!").await.status,
        server.login(&nobody, "Wrong123!").await.status,
        server.login(&nobody, "Wrong123!").await.status,
    ];
    assert_eq!(
        answers,
        [
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
}
