//! Host jobs in real Postgres: each job's handler gets a connection scoped to the job's own
//! tenant (its schema and nothing else), however the jobs of two tenants interleave on one
//! worker and one small pool budget.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use tenant_manager::host_jobs::{HostJobOutcome, HostJobs, HostWorkerConfig, JobContext};
use tenant_manager::memory::{InMemoryJobQueue, InMemoryRegistry};
use tenant_manager::pool::PoolConfig;
use tenant_manager::postgres::sqlx::{self, AssertSqlSafe, Connection, PgConnection};
use tenant_manager::postgres::{DerivedCredentials, PgTenantConnector, ServerMap, quote_ident};
use tenant_manager::{
    Isolation, NewTenant, PoolManager, Secret, TenantId, TenantRegistry, TenantSlug, TenantStatus,
};
use tenant_manager_test_support::TestDatabase;
use tokio_util::sync::CancellationToken;

/// What one job's connection saw: its tenant, `current_schema()`, the `search_path` and the
/// note in the tenant's table.
type Seen = (TenantId, String, String, String);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_job_runs_with_a_connection_of_its_own_tenant() {
    let db = TestDatabase::create().await;
    let registry = Arc::new(InMemoryRegistry::new());
    let mut admin = PgConnection::connect(db.url()).await.expect("admin");
    let mut tenants = Vec::new();
    for slug in ["acme", "globex"] {
        let mut new = NewTenant::new(TenantSlug::new(slug).unwrap(), slug, Isolation::Schema)
            .expect("tenant");
        new.placement.database = db.name().to_owned();
        let tenant = registry.create_tenant(new).await.expect("create");
        for status in [TenantStatus::Provisioning, TenantStatus::Active] {
            registry
                .transition(tenant.id, status, None)
                .await
                .expect("transition");
        }
        let schema = tenant.placement.schema.clone().expect("schema tenant");
        let q = quote_ident(&schema);
        let ddl = format!(
            "CREATE SCHEMA {q}; CREATE TABLE {q}.notes (body text); \
             INSERT INTO {q}.notes VALUES ('note-of-{slug}')"
        );
        sqlx::raw_sql(AssertSqlSafe(ddl))
            .execute(&mut admin)
            .await
            .expect("ddl");
        tenants.push((tenant.id, schema, slug));
    }

    let credentials = DerivedCredentials::new(Secret::new("facade-tests-master-secret-0123456789"));
    let pools: Arc<dyn PoolManager<Connection = PgConnection>> = Arc::new(
        PgTenantConnector::new(
            ServerMap::single(db.admin_url()).expect("servers"),
            Arc::new(credentials.expect("credentials")),
        )
        .into_pools(PoolConfig::default().with_max_total(1))
        .expect("pools"),
    );
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let jobs =
        HostJobs::<PgConnection>::builder(Arc::new(InMemoryJobQueue::default()), registry.clone())
            .with_pools(pools)
            .register("report.whoami", {
                let seen = Arc::clone(&seen);
                move |mut ctx: JobContext<PgConnection>, _payload: serde_json::Value| {
                    let seen = Arc::clone(&seen);
                    async move {
                        let tenant = ctx.tenant().id;
                        let conn = ctx.conn().await?;
                        assert_eq!(conn.tenant(), tenant);
                        let row: (String, String, String) = sqlx::query_as(
                            "SELECT current_schema()::text, current_setting('search_path'), \
                     (SELECT body FROM notes)",
                        )
                        .fetch_one(&mut **conn)
                        .await
                        .expect("scoped query");
                        seen.lock().unwrap().push((tenant, row.0, row.1, row.2));
                        Ok(())
                    }
                }
            })
            .expect("kind")
            .build();

    for _ in 0..3 {
        for (tenant, _, _) in &tenants {
            jobs.enqueue(*tenant, "report.whoami", serde_json::json!({}))
                .await
                .expect("enqueue");
        }
    }
    let worker = jobs.worker(HostWorkerConfig::default()).expect("worker");
    let token = CancellationToken::new();
    for _ in 0..6 {
        let report = worker.run_once(&token).await.expect("run").expect("job");
        assert_eq!(report.outcome, HostJobOutcome::Completed, "{report:?}");
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 6);
    for (tenant, schema, search_path, note) in seen {
        let (_, own_schema, slug) = tenants.iter().find(|t| t.0 == tenant).expect("known");
        assert_eq!(
            &schema, own_schema,
            "the job ran in its own tenant's schema"
        );
        assert!(search_path.contains(own_schema.as_str()), "{search_path}");
        assert_eq!(note, format!("note-of-{slug}"));
    }
}
