//! What one tenant request costs Postgres, counted by Postgres itself: the real server on a
//! deployment of its own (fresh global and shared databases, so no other test's traffic is
//! counted), one schema tenant on the shared pool, repeated `GET /api/companies`, and the
//! `pg_stat_database` transaction counts (`xact_commit + xact_rollback`) of the deployment's
//! shared and global databases before and after: together at most 1.2 per request (the query,
//! and now and then a scope switch).
//!
//! Backends publish their counts when they go idle, at most 10 s later in Postgres 15
//! (`PGSTAT_IDLE_INTERVAL`), so each reading waits for that and then until the counts stop
//! moving.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::pg::PgEnv;
use common::text;
use http::StatusCode;
use reference_server::http_client::Auth;
use serde_json::json;
use sqlx::{Connection, PgConnection};

/// Repeated requests measured.
const REQUESTS: u32 = 400;

/// The published transaction count of each of `databases`.
async fn published(admin: &mut PgConnection, databases: &[String]) -> Vec<i64> {
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(&mut *admin)
        .await
        .unwrap();
    let mut counts = Vec::with_capacity(databases.len());
    for database in databases {
        let count: i64 = sqlx::query_scalar(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1",
        )
        .bind(database)
        .fetch_one(&mut *admin)
        .await
        .unwrap();
        counts.push(count);
    }
    counts
}

/// The counts of `databases` once every idle backend has published: waits out Postgres'
/// idle publishing interval, then until two readings a second apart agree (at most 20 s more).
async fn settled(admin: &mut PgConnection, databases: &[String]) -> Vec<i64> {
    tokio::time::sleep(Duration::from_secs(11)).await;
    let mut last = published(admin, databases).await;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = published(admin, databases).await;
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

#[tokio::test]
async fn a_repeated_request_of_one_schema_tenant_costs_at_most_1_2_transactions() {
    let env = PgEnv::new().await;
    let server = env.server(&[]);
    let (_, token, answer) = env.register(&server, "xacts", "schema").await;
    assert_eq!(answer["tenant"]["isolation"], "schema");
    let auth = Auth::Bearer(&token);
    let r = server
        .post("/api/companies", auth, &json!({"name": "Initech"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
    // Warm: the tenant in the server's cache, the pool's connection open, statements prepared.
    for _ in 0..20 {
        let r = server.get("/api/companies", auth).await;
        assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    }

    let databases = vec![format!("{}_shared", env.tag), env.global_database()];
    let mut admin = env.admin("postgres").await;
    let before = settled(&mut admin, &databases).await;
    for _ in 0..REQUESTS {
        let r = server.get("/api/companies", auth).await;
        assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    }
    let after = settled(&mut admin, &databases).await;
    let _ = admin.close().await;

    let per_request = |i: usize| (after[i] - before[i]) as f64 / f64::from(REQUESTS);
    let (shared, global) = (per_request(0), per_request(1));
    println!(
        "transactions per GET /api/companies of one schema tenant ({REQUESTS} requests): \
         shared database {shared:.3}, global database {global:.3}"
    );
    // Every request ran its query in the shared database: fewer means nothing was counted.
    assert!(
        shared >= 1.0,
        "the counts were not published: {shared:.3} per request"
    );
    assert!(
        shared + global <= 1.2,
        "{:.3} transactions per request (shared database {shared:.3}, global {global:.3}; \
         at most 1.2)",
        shared + global
    );
}
