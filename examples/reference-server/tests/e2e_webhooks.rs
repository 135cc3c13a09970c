//! End-to-end: tenant events delivered as signed webhooks by the real `reference-server`
//! binary (embedded registry) to a receiver served inside the test (axum on a free loopback
//! port, recording every request), with the event stream in the real Redis under a key prefix
//! of the test's own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use common::{ADMIN_KEY, Server, text};
use http::{HeaderMap, StatusCode};
use reference_server::http_client::Auth;
use serde_json::{Value, json};
use tenant_manager::Secret;
use tenant_manager::webhook::{DEFAULT_TOLERANCE, verify};
use tenant_manager_test_support::TestRedis;

const SECRET: &str = "whsec_e2e_0123456789abcdef";
/// How long a delivery may take to arrive: a hang limit, not a measurement.
const ARRIVAL: Duration = Duration::from_secs(30);

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    signature: String,
    event_id: String,
    body: Bytes,
    answered: StatusCode,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("json body")
    }

    fn verifies(&self, body: &[u8]) -> bool {
        verify(
            &Secret::new(SECRET),
            &self.signature,
            body,
            time::OffsetDateTime::now_utc(),
            DEFAULT_TOLERANCE,
        )
        .is_ok()
    }
}

/// What the receiver answers: `500` to the first `fail_first` requests, and to every request
/// while `down`; `200` otherwise.
#[derive(Default)]
struct Behaviour {
    fail_first: usize,
    down: std::sync::atomic::AtomicBool,
    seen: AtomicUsize,
    received: Mutex<Vec<Received>>,
}

/// The receiver: an axum server on a free loopback port.
struct Receiver {
    url: String,
    state: Arc<Behaviour>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(fail_first: usize, down: bool) -> Self {
        let state = Arc::new(Behaviour {
            fail_first,
            down: down.into(),
            ..Behaviour::default()
        });
        let app = Router::new()
            .route("/{*path}", post(receive))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, state, task }
    }

    fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// Requests at `path` so far.
    fn at(&self, path: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Waits until `done` holds for the requests at `path`, up to [`ARRIVAL`].
    async fn wait_for(&self, path: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = Instant::now() + ARRIVAL;
        loop {
            let got = self.at(path);
            if done(&got) {
                return got;
            }
            assert!(Instant::now() < deadline, "not delivered in time: {got:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(
    State(state): State<Arc<Behaviour>>,
    uri: http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let n = state.seen.fetch_add(1, Ordering::SeqCst);
    let answered = if n < state.fail_first || state.down.load(Ordering::SeqCst) {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    state.received.lock().unwrap().push(Received {
        path: uri.path().to_owned(),
        signature: header("x-tm-signature"),
        event_id: header("x-tm-event-id"),
        body,
        answered,
    });
    answered
}

/// An endpoint entry of `WEBHOOK_ENDPOINTS`.
fn endpoint(id: &str, receiver: &Receiver, path: &str, events: &str) -> String {
    format!(
        "{id}={}{path};secret={SECRET};events={events}",
        receiver.url
    )
}

/// A server on the test's Redis prefix, delivering to `endpoints`.
fn server(redis: Option<&TestRedis>, endpoints: &str, extra: &[(&str, &str)]) -> Server {
    let mut vars: Vec<(&str, &str)> = vec![
        ("WEBHOOK_ENDPOINTS", endpoints),
        ("WEBHOOK_BACKOFF_BASE_MS", "20"),
        ("WEBHOOK_BACKOFF_MAX_MS", "100"),
        ("WEBHOOK_TIMEOUT_MS", "5000"),
    ];
    if let Some(redis) = redis {
        vars.push(("REDIS_URL", redis.url()));
        vars.push(("REDIS_KEY_PREFIX", redis.prefix()));
    }
    vars.extend_from_slice(extra);
    Server::start(&vars)
}

fn unique(tag: &str) -> String {
    format!("{tag}{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

#[tokio::test]
async fn deliveries_are_signed_and_retried_until_the_receiver_answers() {
    let redis = TestRedis::create().await;
    let receiver = Receiver::start(2, false).await;
    let hooks = endpoint("audit", &receiver, "/audit", "registered");
    let server = server(Some(&redis), &hooks, &[("WEBHOOK_MAX_ATTEMPTS", "5")]);
    let (tenant, _, _) = server
        .register("Signed Org", &format!("{}@signed.test", unique("o")))
        .await;

    // 500, 500, then 200: delivered on the third attempt, and not again.
    let got = receiver.wait_for("/audit", |r| r.len() >= 3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got_after = receiver.at("/audit");
    assert_eq!(got_after.len(), 3, "{got_after:?}");
    let answered: Vec<u16> = got.iter().map(|r| r.answered.as_u16()).collect();
    assert_eq!(answered, [500, 500, 200]);
    let event = got[2].json();
    assert_eq!(event["kind"], "registered");
    assert_eq!(event["tenant_id"], tenant);
    assert_eq!(
        event["actor"]["type"], "user",
        "a registration is its owner's"
    );
    for request in &got {
        assert_eq!(
            request.event_id, event["id"],
            "the same event id on every attempt"
        );
        assert!(request.verifies(&request.body), "{request:?}");
        assert_eq!(request.body, got[2].body);
    }
    // A tampered body, or another secret, fails verification.
    let tampered =
        String::from_utf8_lossy(&got[2].body).replace(&tenant, &uuid::Uuid::new_v4().to_string());
    assert!(!got[2].verifies(tampered.as_bytes()));
    let other = verify(
        &Secret::new("another-secret-0123456789"),
        &got[2].signature,
        &got[2].body,
        time::OffsetDateTime::now_utc(),
        DEFAULT_TOLERANCE,
    );
    assert!(other.is_err());

    // The admin view counts them, and never shows the secret.
    let list = server
        .get("/api/admin/webhooks", Auth::AdminKey(ADMIN_KEY))
        .await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(!text(&list).contains(SECRET));
    let views: Value = list.json().unwrap();
    assert_eq!(views[0]["id"], "audit");
    assert_eq!(views[0]["delivered"], 1);
    assert_eq!(views[0]["failed_attempts"], 2);
    assert_eq!(views[0]["dead_lettered"], 0);
}

/// A receiver that is down: each event is attempted `WEBHOOK_MAX_ATTEMPTS` times, then lands
/// in the dead letters, visible through the admin route; once the receiver is back, a
/// redelivery posts it (same event id, signed) and empties the dead letters.
async fn dead_letters_then_redelivery(redis: Option<&TestRedis>) {
    let receiver = Receiver::start(0, true).await;
    let hooks = endpoint("billing", &receiver, "/billing", "registered");
    let server = server(redis, &hooks, &[("WEBHOOK_MAX_ATTEMPTS", "3")]);
    let (tenant, _, _) = server
        .register("Dead Org", &format!("{}@dead.test", unique("d")))
        .await;
    let path = "/api/admin/webhooks/billing/dead-letters";
    let deadline = Instant::now() + ARRIVAL;
    let dead = loop {
        let dead = server.get_json(path, Auth::AdminKey(ADMIN_KEY)).await;
        if dead.as_array().is_some_and(|d| !d.is_empty()) {
            break dead;
        }
        assert!(Instant::now() < deadline, "no dead letter in time: {dead}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let dead = dead.as_array().unwrap().clone();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["event"]["tenant_id"], tenant);
    assert_eq!(dead[0]["attempts"], 3);
    assert_eq!(dead[0]["error"], "answered 500");
    let attempts = receiver.at("/billing");
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    let event_id = dead[0]["event"]["id"].as_str().unwrap().to_owned();

    receiver.set_down(false);
    let id = dead[0]["id"].as_str().unwrap();
    let redelivered = server
        .post(
            &format!("{path}/{id}/redeliver"),
            Auth::AdminKey(ADMIN_KEY),
            &json!({}),
        )
        .await;
    assert_eq!(redelivered.status, StatusCode::OK, "{}", text(&redelivered));
    let redelivered: Value = redelivered.json().unwrap();
    assert_eq!(redelivered["delivered"], true, "{redelivered}");
    let got = receiver.at("/billing");
    assert_eq!(got.len(), 4);
    assert_eq!(got[3].event_id, event_id);
    assert_eq!(got[3].answered, StatusCode::OK);
    assert!(got[3].verifies(&got[3].body));
    let empty = server.get_json(path, Auth::AdminKey(ADMIN_KEY)).await;
    assert_eq!(empty, json!([]));
    // Taken: a second redelivery of the same letter finds nothing.
    let again = server
        .post(
            &format!("{path}/{id}/redeliver"),
            Auth::AdminKey(ADMIN_KEY),
            &json!({}),
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let views = server
        .get_json("/api/admin/webhooks", Auth::AdminKey(ADMIN_KEY))
        .await;
    assert_eq!(views[0]["dead_lettered"], 1);
}

#[tokio::test]
async fn with_redis_an_event_that_always_fails_is_dead_lettered_and_redelivered() {
    let redis = TestRedis::create().await;
    dead_letters_then_redelivery(Some(&redis)).await;
}

#[tokio::test]
async fn in_memory_an_event_that_always_fails_is_dead_lettered_and_redelivered() {
    dead_letters_then_redelivery(None).await;
}

#[tokio::test]
async fn redeliver_all_posts_every_dead_letter_once_the_receiver_is_back() {
    let redis = TestRedis::create().await;
    let receiver = Receiver::start(0, true).await;
    let hooks = endpoint("crm", &receiver, "/crm", "registered");
    let server = server(Some(&redis), &hooks, &[("WEBHOOK_MAX_ATTEMPTS", "1")]);
    for _ in 0..3 {
        server
            .register("Many Org", &format!("{}@many.test", unique("m")))
            .await;
    }
    let path = "/api/admin/webhooks/crm/dead-letters";
    let deadline = Instant::now() + ARRIVAL;
    while server
        .get_json(path, Auth::AdminKey(ADMIN_KEY))
        .await
        .as_array()
        .map_or(0, Vec::len)
        < 3
    {
        assert!(Instant::now() < deadline, "dead letters missing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    receiver.set_down(false);
    let queued = server
        .post(
            &format!("{path}/redeliver"),
            Auth::AdminKey(ADMIN_KEY),
            &json!({}),
        )
        .await;
    assert_eq!(queued.status, StatusCode::ACCEPTED, "{}", text(&queued));
    assert_eq!(queued.json::<Value>().unwrap()["queued"], 3);
    let got = receiver
        .wait_for("/crm", |r| {
            r.iter().filter(|r| r.answered == StatusCode::OK).count() >= 3
        })
        .await;
    let mut delivered: Vec<&str> = got
        .iter()
        .filter(|r| r.answered == StatusCode::OK)
        .map(|r| r.event_id.as_str())
        .collect();
    delivered.sort_unstable();
    delivered.dedup();
    assert_eq!(delivered.len(), 3);
    let deadline = Instant::now() + ARRIVAL;
    while server.get_json(path, Auth::AdminKey(ADMIN_KEY)).await != json!([]) {
        assert!(Instant::now() < deadline, "dead letters not emptied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn two_instances_sharing_redis_deliver_each_event_once_per_endpoint() {
    let redis = TestRedis::create().await;
    let receiver = Receiver::start(0, false).await;
    let hooks = format!(
        "{} {}",
        endpoint("one", &receiver, "/one", "registered"),
        endpoint("two", &receiver, "/two", "*")
    );
    let a = server(Some(&redis), &hooks, &[]);
    let b = server(Some(&redis), &hooks, &[]);
    let mut tenants = Vec::new();
    for i in 0..12 {
        let server = if i % 2 == 0 { &a } else { &b };
        let (tenant, _, _) = server
            .register("Twice Org", &format!("{}@twice.test", unique("t")))
            .await;
        tenants.push(tenant);
    }
    for path in ["/one", "/two"] {
        receiver
            .wait_for(path, |r| {
                let tenants_seen: Vec<String> = r
                    .iter()
                    .map(|r| r.json()["tenant_id"].as_str().unwrap().to_owned())
                    .collect();
                tenants.iter().all(|t| tenants_seen.contains(t))
            })
            .await;
    }
    // Both instances had time to deliver anything twice.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for path in ["/one", "/two"] {
        let got = receiver.at(path);
        let mut per_event: HashMap<String, usize> = HashMap::new();
        for request in &got {
            assert!(request.verifies(&request.body));
            *per_event.entry(request.event_id.clone()).or_default() += 1;
        }
        assert!(
            per_event.values().all(|&n| n == 1),
            "{path}: an event was delivered more than once: {per_event:?}"
        );
        let registered = got
            .iter()
            .filter(|r| r.json()["kind"] == "registered")
            .count();
        assert_eq!(registered, 12, "{path}");
    }
    // Both instances did part of the work.
    let va = a
        .get_json("/api/admin/webhooks", Auth::AdminKey(ADMIN_KEY))
        .await;
    let vb = b
        .get_json("/api/admin/webhooks", Auth::AdminKey(ADMIN_KEY))
        .await;
    let delivered = |v: &Value| v[0]["delivered"].as_u64().unwrap();
    assert_eq!(delivered(&va) + delivered(&vb), 12);
}

#[tokio::test]
async fn a_flood_of_refused_requests_publishes_one_quota_exceeded_and_admin_changes_name_the_admin()
{
    let redis = TestRedis::create().await;
    let receiver = Receiver::start(0, false).await;
    let hooks = endpoint("ops", &receiver, "/ops", "quota_exceeded,plan_changed");
    let server = server(
        Some(&redis),
        &hooks,
        &[("QUOTA_EVENT_WINDOW_MS", "3600000")],
    );
    let (tenant, token, body) = server
        .register("Flood Org", &format!("{}@flood.test", unique("f")))
        .await;
    let user = body["user"]["id"].as_str().unwrap_or_default().to_owned();
    let quota = json!({
        "rate": {"limit": 2, "window_ms": 3_600_000},
        "max_users": 10,
        "max_storage_bytes": 1_000_000_000,
        "max_connections": 5
    });
    let r = server
        .send(
            http::Method::PUT,
            &format!("/api/admin/tenants/{tenant}/quota"),
            Auth::AdminKey(ADMIN_KEY),
            Some(&quota),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    let mut refused = 0;
    for _ in 0..40 {
        let r = server.get("/api/tenant", Auth::Bearer(&token)).await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            refused += 1;
        }
    }
    assert!(refused >= 30, "{refused} refused");
    receiver
        .wait_for("/ops", |r| {
            r.iter().any(|r| r.json()["kind"] == "quota_exceeded")
        })
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = receiver.at("/ops");
    let exceeded: Vec<Value> = got
        .iter()
        .map(Received::json)
        .filter(|e| e["kind"] == "quota_exceeded")
        .collect();
    assert_eq!(exceeded.len(), 1, "{exceeded:?}");
    assert_eq!(exceeded[0]["tenant_id"], tenant);
    assert_eq!(exceeded[0]["details"]["quota"], "requests");
    assert_eq!(exceeded[0]["details"]["limit"], 2);
    assert_eq!(exceeded[0]["actor"]["type"], "user");
    if !user.is_empty() {
        assert_eq!(exceeded[0]["actor"]["id"], user);
    }
    let changed: Vec<Value> = got
        .iter()
        .map(Received::json)
        .filter(|e| e["kind"] == "plan_changed")
        .collect();
    assert_eq!(changed.len(), 1);
    assert_eq!(
        changed[0]["actor"]["type"], "admin",
        "an admin API change is the admin's"
    );
}

#[tokio::test]
async fn bad_input_on_the_webhook_routes_is_refused_naming_the_field() {
    let receiver = Receiver::start(0, false).await;
    let hooks = endpoint("audit", &receiver, "/audit", "*");
    let server = server(None, &hooks, &[]);
    let admin = Auth::AdminKey(ADMIN_KEY);
    for (method, path, status, field) in [
        (
            http::Method::GET,
            "/api/admin/webhooks/Bad.Id/dead-letters",
            400,
            "id",
        ),
        (
            http::Method::GET,
            "/api/admin/webhooks/nobody/dead-letters",
            404,
            "id",
        ),
        (
            http::Method::GET,
            "/api/admin/webhooks/audit/dead-letters?limit=0",
            400,
            "limit",
        ),
        (
            http::Method::GET,
            "/api/admin/webhooks/audit/dead-letters?limit=x",
            400,
            "limit",
        ),
        (
            http::Method::GET,
            "/api/admin/webhooks/audit/dead-letters?other=1",
            400,
            "query",
        ),
        (
            http::Method::POST,
            "/api/admin/webhooks/audit/dead-letters/12-x/redeliver",
            400,
            "dead_letter_id",
        ),
        (
            http::Method::POST,
            "/api/admin/webhooks/audit/dead-letters/1-1/redeliver",
            404,
            "dead_letter_id",
        ),
        (
            http::Method::POST,
            "/api/admin/webhooks/nobody/dead-letters/1-1/redeliver",
            404,
            "id",
        ),
        (
            http::Method::POST,
            "/api/admin/webhooks/UP/dead-letters/redeliver",
            400,
            "id",
        ),
    ] {
        let r = server.send(method.clone(), path, admin, None).await;
        assert_eq!(r.status.as_u16(), status, "{method} {path}: {}", text(&r));
        let body: Value = r.json().unwrap();
        assert_eq!(body["error"]["field"], field, "{method} {path}: {body}");
    }
    let unauthenticated = server.get("/api/admin/webhooks", Auth::None).await;
    assert_eq!(unauthenticated.status, StatusCode::UNAUTHORIZED);
    let doc = server.get_json("/api/openapi.json", Auth::None).await;
    for path in [
        "/api/admin/webhooks",
        "/api/admin/webhooks/{id}/dead-letters",
        "/api/admin/webhooks/{id}/dead-letters/{dead_letter_id}/redeliver",
        "/api/admin/webhooks/{id}/dead-letters/redeliver",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
}

#[test]
fn a_bad_webhook_endpoints_value_stops_start_up_without_echoing_the_secret() {
    for (value, reason) in [
        (
            "audit=ftp://hooks.test/x;secret=hunter2hunter2hunter2",
            "http:// or https://",
        ),
        (
            "Audit=https://hooks.test/x;secret=hunter2hunter2hunter2",
            "invalid id",
        ),
        (
            "audit=https://hooks.test/x;secret=hunter2",
            "invalid secret",
        ),
        (
            "audit=https://hooks.test/x;secret=hunter2hunter2hunter2;events=exploded",
            "unknown event kind",
        ),
        ("audit=https://hooks.test/x", "no secret"),
    ] {
        let out = common::command(&[("WEBHOOK_ENDPOINTS", value)])
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(78), "{value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stderr.contains("invalid configuration: WEBHOOK_ENDPOINTS:"),
            "{stderr}"
        );
        assert!(stderr.contains(reason), "{value}: {stderr}");
        assert!(
            !stderr.contains("hunter2") && !stdout.contains("hunter2"),
            "{stderr}"
        );
        assert!(!stderr.contains("hooks.test"), "{stderr}");
    }
}
