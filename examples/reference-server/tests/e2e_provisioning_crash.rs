//! End-to-end: async provisioning on Postgres + Redis (a fresh key prefix on the shared Redis).
//! Several organisations register, the server is SIGKILLed while its worker holds a job, a
//! second server starts, and every tenant reaches `active` within a minute of the crash: the
//! job the dead worker held is taken over, not left until a 5-minute visibility timeout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::email;
use common::pg::PgEnv;
use serde_json::json;
use sqlx::{Connection, PgConnection};
use tenant_manager::redis::redis;

/// Every tenant must be `active` this soon after the crash.
const TAKEOVER: Duration = Duration::from_secs(60);
/// Organisations registered before the crash.
const TENANTS: usize = 8;

/// The value of the deployment variable `name`.
fn var(env: &PgEnv, name: &str) -> String {
    env.vars()
        .into_iter()
        .find_map(|(k, v)| (k == name).then_some(v))
        .unwrap_or_else(|| panic!("{name}"))
}

/// The provisioning jobs delivered to a worker and not yet acknowledged.
async fn pending_jobs(redis: &mut redis::aio::MultiplexedConnection, env: &PgEnv) -> u64 {
    let stream = format!("{}queue:{{jobs}}:stream", var(env, "REDIS_KEY_PREFIX"));
    let reply: redis::Value = redis::cmd("XPENDING")
        .arg(&stream)
        .arg("workers")
        .query_async(redis)
        .await
        .unwrap_or(redis::Value::Nil);
    match reply {
        redis::Value::Array(fields) => match fields.first() {
            Some(redis::Value::Int(n)) => u64::try_from(*n).unwrap_or(0),
            _ => 0,
        },
        _ => 0,
    }
}

/// The statuses of `ids` in the registry, in order.
async fn statuses(conn: &mut PgConnection, ids: &[uuid::Uuid]) -> Vec<String> {
    let mut out = Vec::new();
    for id in ids {
        let status: String = sqlx::query_scalar("SELECT status FROM tm_tenants WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        out.push(status);
    }
    out
}

#[tokio::test]
async fn tenants_of_a_server_killed_mid_provisioning_are_finished_by_the_next_one() {
    let env = PgEnv::new().await;
    let async_mode = [("ENABLE_ASYNC_PROVISIONING", "true")];
    let mut first = env.server(&async_mode);
    let client = redis::Client::open(var(&env, "REDIS_URL")).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    let mut registry = PgConnection::connect(&var(&env, "GLOBAL_DATABASE_URL"))
        .await
        .unwrap();

    // Database isolation: each run creates a database and a role, slow enough to be caught.
    let registrations = (0..TENANTS).map(|i| {
        let name = format!("crash{i}");
        let body = json!({
            "organization_name": format!("Org {name}"),
            "admin_email": email(&name),
            "admin_password": "Test123!",
            "slug": env.slug(&name),
            "isolation": "database",
        });
        let server = &first;
        async move { server.register_with(&body).await }
    });
    let mut ids = Vec::new();
    for (id, _, answer) in futures::future::join_all(registrations).await {
        assert_eq!(answer["tenant"]["status"], "provisioning", "{answer}");
        ids.push(id.parse::<uuid::Uuid>().unwrap());
    }

    // SIGKILL while the worker holds a job (delivered, not acknowledged).
    let deadline = Instant::now() + Duration::from_secs(30);
    while pending_jobs(&mut redis, &env).await == 0 {
        assert!(
            Instant::now() < deadline,
            "the worker never held a job: {:?}",
            statuses(&mut registry, &ids).await
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.kill();
    let crashed_at = Instant::now();
    let held = pending_jobs(&mut redis, &env).await;
    let before = statuses(&mut registry, &ids).await;
    assert!(
        held >= 1,
        "the dead worker holds no job, so nothing is tested: {before:?}"
    );
    assert!(
        before.iter().any(|s| s == "provisioning"),
        "all done before the crash: {before:?}"
    );

    // A second server (another consumer) finishes every tenant.
    let second = env.server(&async_mode);
    loop {
        let now = statuses(&mut registry, &ids).await;
        if now.iter().all(|s| s == "active") {
            break;
        }
        assert!(
            crashed_at.elapsed() < TAKEOVER,
            "{held} job(s) held by the killed server; {TAKEOVER:?} after the crash: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "{TENANTS} tenants active {:?} after the crash ({held} job(s) held by the killed server)",
        crashed_at.elapsed()
    );
    assert_eq!(
        pending_jobs(&mut redis, &env).await,
        0,
        "every job acknowledged"
    );
    drop(second);
    let _ = registry.close().await;
}
