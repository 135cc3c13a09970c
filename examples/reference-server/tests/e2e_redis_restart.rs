//! End-to-end: two `reference-server` processes on the shared Postgres and a PRIVATE
//! `redis-server` (started on a free port by the test, killed and started again; never the
//! shared one). After Redis restarts, a tenant suspended through server 1 is refused by
//! server 2 within a second of the suspension, and server 2 closes its pool.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::isolation::{Org, has_pool};
use common::pg::PgEnv;
use common::{ADMIN_KEY, Server, text};
use http::StatusCode;
use reference_server::http_client::Auth;
use serde_json::json;
use tenant_manager_test_support::PrivateRedis;

/// How long servers may take to serve again after the restart: a hang limit.
const RECOVERY: Duration = Duration::from_secs(30);
/// How soon server 2 must refuse the tenant after server 1 suspended it.
const PROPAGATION: Duration = Duration::from_secs(1);

/// The tenant's own view through `server`.
async fn tenant_status(server: &Server, org: &Org) -> StatusCode {
    server
        .get("/api/tenant", Auth::Bearer(&org.token))
        .await
        .status
}

/// Polls until `server` serves `org` again, up to [`RECOVERY`].
async fn wait_served(server: &Server, org: &Org) {
    let deadline = Instant::now() + RECOVERY;
    loop {
        let status = tenant_status(server, org).await;
        if status == StatusCode::OK {
            return;
        }
        assert!(Instant::now() < deadline, "not served again: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `n` tenant requests at once, so the server holds several pooled Redis connections (as a
/// server under load does) when Redis dies.
async fn concurrent_requests(server: &Server, org: &Org, n: usize) {
    let requests = (0..n).map(|_| tenant_status(server, org));
    for status in futures::future::join_all(requests).await {
        assert_eq!(status, StatusCode::OK);
    }
}

#[tokio::test]
async fn after_a_redis_restart_a_suspension_through_one_server_reaches_the_other_within_a_second() {
    let env = PgEnv::new().await;
    let mut redis = PrivateRedis::start();
    let url = redis.url();
    let one = env.server(&[("REDIS_URL", &url)]);
    let two = env.server(&[("REDIS_URL", &url)]);
    let (id, token, _) = env.register(&one, "restart", "database").await;
    let org = Org { id, token };
    for server in [&one, &two] {
        concurrent_requests(server, &org, 8).await;
        let r = server.get("/api/companies", Auth::Bearer(&org.token)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    }

    redis.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.restart();

    // Traffic recovers on server 2 (which caches the tenant again); server 1 gets no tenant
    // traffic before the suspension, as an instance behind a load balancer may not.
    wait_served(&two, &org).await;
    for _ in 0..3 {
        assert_eq!(tenant_status(&two, &org).await, StatusCode::OK);
    }
    let r = two.get("/api/companies", Auth::Bearer(&org.token)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    assert!(
        has_pool(&two, &org).await,
        "server 2 has the tenant's pool open"
    );

    let suspended_at = Instant::now();
    let suspend = one
        .post(
            &format!("/api/admin/tenants/{}/suspend", org.id),
            Auth::AdminKey(ADMIN_KEY),
            &json!({"reason": "unpaid"}),
        )
        .await;
    // Poll server 2 with a deadline of one second after the suspension.
    let mut last = StatusCode::OK;
    while Instant::now() < suspended_at + PROPAGATION {
        last = tenant_status(&two, &org).await;
        if last == StatusCode::FORBIDDEN {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        suspend.status,
        StatusCode::OK,
        "suspend through server 1: {} (server 2 then answered {last} for the tenant)",
        text(&suspend)
    );
    assert_eq!(
        last,
        StatusCode::FORBIDDEN,
        "server 2 still serves the tenant suspended through server 1 after {PROPAGATION:?}"
    );

    // Server 2 closes its pool of the suspended tenant too.
    let deadline = Instant::now() + Duration::from_secs(5);
    while has_pool(&two, &org).await {
        assert!(Instant::now() < deadline, "server 2 kept the pool open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
