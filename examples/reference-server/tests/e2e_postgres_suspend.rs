//! End-to-end: a database-isolated tenant suspended anywhere (by `tenant-cli` in its own
//! process, or through another server instance) has its pool closed on every running server:
//! no session of the tenant's role stays open in Postgres, and `/api/admin/pools` lists no
//! pool of it. Neighbours' pools stay open, and a resumed tenant is served again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::isolation::{Org, has_pool};
use common::pg::PgEnv;
use common::{ADMIN_KEY, Server, text};
use http::StatusCode;
use reference_server::http_client::Auth;
use serde_json::json;
use sqlx::Connection;

/// How long the end state may take to show: a hang limit, not a measurement.
const SETTLE: Duration = Duration::from_secs(5);

/// Registers the database-isolated tenant `<tag>_<name>`.
async fn register(server: &Server, env: &PgEnv, name: &str) -> Org {
    let (id, token, answer) = env.register(server, name, "database").await;
    assert_eq!(answer["tenant"]["isolation"], "database");
    Org { id, token }
}

/// The login role of the database-isolated tenant `<tag>_<name>`: `<tag>_t_<tag>_<name>`.
fn role(env: &PgEnv, name: &str) -> String {
    format!("{}_t_{}", env.tag, env.slug(name))
}

/// A tenant request that needs a pooled connection (its companies).
async fn use_pool(server: &Server, org: &Org) {
    let r = server.get("/api/companies", Auth::Bearer(&org.token)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
}

/// The sessions the servers hold open as `role`.
async fn sessions(env: &PgEnv, role: &str) -> i64 {
    let mut admin = env.admin("postgres").await;
    let count: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE usename = $1 AND application_name = 'reference-server'",
    )
    .bind(role)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    let _ = admin.close().await;
    count
}

/// Polls until no server in `servers` has a pool of `org` and Postgres shows no session of
/// `role`, for at most [`SETTLE`]; returns what was last seen (pools per server, sessions).
async fn closed_everywhere(
    env: &PgEnv,
    servers: &[&Server],
    org: &Org,
    role: &str,
) -> (Vec<bool>, i64) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let mut pools = Vec::new();
        for server in servers {
            pools.push(has_pool(server, org).await);
        }
        let open = sessions(env, role).await;
        if (pools.iter().all(|p| !p) && open == 0) || Instant::now() >= deadline {
            return (pools, open);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `tenant-cli` with `args` and asserts it succeeds.
fn cli(env: &PgEnv, args: &[&str]) {
    let out = env.cli(args).output().unwrap();
    assert!(
        out.status.success(),
        "tenant-cli {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_tenant_suspended_by_tenant_cli_has_its_pool_closed_on_the_running_server() {
    let env = PgEnv::new().await;
    let server = env.server(&[]);
    let held = register(&server, &env, "held").await;
    let neighbour = register(&server, &env, "neighbour").await;
    use_pool(&server, &held).await;
    use_pool(&server, &neighbour).await;
    let held_role = role(&env, "held");
    assert!(has_pool(&server, &held).await, "the tenant's pool is open");
    assert!(
        sessions(&env, &held_role).await > 0,
        "the pool keeps a session as {held_role}"
    );

    // tenant-cli runs in its own process: it closes no pool itself.
    cli(
        &env,
        &[
            "tenants",
            "suspend",
            &env.slug("held"),
            "--reason",
            "unpaid",
        ],
    );
    let (pools, open) = closed_everywhere(&env, &[&server], &held, &held_role).await;
    assert_eq!(
        pools,
        [false],
        "the server closed the suspended tenant's pool"
    );
    assert_eq!(open, 0, "no session of {held_role} is left");
    let r = server.get("/api/tenant", Auth::Bearer(&held.token)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", text(&r));

    // The neighbour keeps its pool and its session.
    assert!(has_pool(&server, &neighbour).await, "the neighbour's pool");
    assert!(sessions(&env, &role(&env, "neighbour")).await > 0);

    // Resumed by tenant-cli, the tenant is served again on a new pool.
    cli(&env, &["tenants", "resume", &env.slug("held")]);
    let deadline = Instant::now() + SETTLE;
    loop {
        let r = server
            .get("/api/companies", Auth::Bearer(&held.token))
            .await;
        if r.status == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "still refused: {}", text(&r));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(has_pool(&server, &held).await, "the pool reopened");
    assert!(sessions(&env, &held_role).await > 0);
}

#[tokio::test]
async fn a_tenant_suspended_through_one_instance_has_its_pools_closed_on_every_instance() {
    let env = PgEnv::new().await;
    let one = env.server(&[]);
    let two = env.server(&[]);
    let org = register(&one, &env, "twice").await;
    let org_role = role(&env, "twice");
    for server in [&one, &two] {
        use_pool(server, &org).await;
        assert!(has_pool(server, &org).await, "each instance opened a pool");
    }

    let r = one
        .post(
            &format!("/api/admin/tenants/{}/suspend", org.id),
            Auth::AdminKey(ADMIN_KEY),
            &json!({"reason": "unpaid"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    let (pools, open) = closed_everywhere(&env, &[&one, &two], &org, &org_role).await;
    assert_eq!(pools, [false, false], "both instances closed the pool");
    assert_eq!(open, 0, "no session of {org_role} is left");
}
