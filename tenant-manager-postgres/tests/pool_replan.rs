//! Prepared statements on a shared pool behind the wall, across tenant switches: the driver's
//! statement is prepared once per connection and kept (the reset checks the session's prepared
//! statements instead of deallocating them), and its cached plan follows `search_path`, so
//! each tenant reads its own schema through the same prepared statement. The plan counts of
//! `pg_prepared_statements` show what Postgres re-planned.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod pool_support;

use sqlx::PgConnection;
use tenant_manager_postgres::{PgTenantConnector, ServerMap};

use common::app::{app_login, env, keys, walled_pair};

const LIST: &str = "SELECT name FROM companies ORDER BY name";

/// (statements prepared for `LIST`, generic plans, custom plans, when it was prepared) of
/// this session.
async fn plans(conn: &mut PgConnection) -> (i64, i64, i64, String) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "SELECT count(*), coalesce(sum(generic_plans), 0)::int8, \
                coalesce(sum(custom_plans), 0)::int8, max(prepare_time)::text \
         FROM pg_prepared_statements WHERE statement = '{LIST}' AND NOT from_sql"
    )))
    .fetch_one(conn)
    .await
    .map(|row| {
        use sqlx::Row;
        (row.get(0), row.get(1), row.get(2), row.get(3))
    })
    .expect("pg_prepared_statements")
}

#[tokio::test]
async fn one_prepared_statement_serves_every_tenant_of_a_connection() {
    let env = env().await;
    let (a, b) = walled_pair(&env).await;
    let pools = PgTenantConnector::new(
        ServerMap::single(env.db.admin_url()).expect("servers"),
        env.credentials.clone(),
    )
    .with_app_login(app_login(&env))
    .with_wall(keys(&env, 1))
    .with_application_name(format!("tmtest_replan_{}", env.tag))
    .into_pools(pool_support::config(1, 1))
    .expect("pools");

    let mut seen = Vec::new();
    for round in 0..3 {
        for (tenant, names) in [(&a, vec!["Globex", "Initech"]), (&b, vec!["Hooli"])] {
            let mut conn = pools.acquire(tenant).await.expect("acquire");
            // Six executions: past the five custom plans after which Postgres considers a
            // generic one.
            for _ in 0..6 {
                let got: Vec<String> = sqlx::query_scalar(LIST)
                    .fetch_all(&mut *conn)
                    .await
                    .expect("list");
                assert_eq!(got, names, "round {round}, {}", tenant.slug);
            }
            let counts = plans(&mut conn).await;
            assert_eq!(
                counts.0, 1,
                "prepared once per connection, kept across switches"
            );
            seen.push(counts);
            drop(conn);
            pool_support::settle(&pools).await;
        }
    }
    // One connection served every checkout: the same statement (prepared once: one
    // `prepare_time`), executed 36 times.
    assert!(
        seen.iter().all(|s| s.3 == seen[0].3),
        "re-prepared: {seen:?}"
    );
    let (_, generic, custom, _) = &seen[seen.len() - 1];
    assert_eq!(generic + custom, 36, "{seen:?}");
    println!("plan counts after each checkout (statements, generic, custom): {seen:?}");
    pools.close_all();
}
