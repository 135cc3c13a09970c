//! The pool engine alone, in front of your own Postgres (`TEST_DATABASE_URL`, `DATABASE_URL`):
//! three schema tenants, twelve checkouts at once within a budget of two connections, a query
//! scoped to its tenant on each. Run: `cargo run --example pool_engine --features postgres`
//! Shared pools log in as the server map's login here; a deployment adds `with_app_login` and
//! `with_wall` (tenant-manager-postgres docs). The schemas it creates are dropped at the end.

use std::sync::Arc;

use futures::future::try_join_all;
use tenant_manager::core::pool::PoolConfig;
use tenant_manager::postgres::sqlx::{self, AssertSqlSafe, Connection, PgConnection};
use tenant_manager::postgres::{DerivedCredentials, PgTenantConnector, ServerMap, quote_ident};
use tenant_manager::{Isolation, NewTenant, Placement, Secret, ServerId, TenantSlug, TenantStatus};

type AnyError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), AnyError> {
    let url = std::env::var("TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let database = url.rsplit('/').next().and_then(|db| db.split('?').next());
    let (database, run) = (database.unwrap_or("postgres"), std::process::id());
    let mut admin = PgConnection::connect(&url).await?;

    let (mut tenants, mut schemas) = (Vec::new(), Vec::new());
    for n in 0..3 {
        let slug = TenantSlug::new(format!("example_{run}_{n}"))?;
        let server = ServerId::default_server();
        let placement = Placement::conventional(&slug, Isolation::Schema, server, database);
        let schema = quote_ident(placement.schema.as_deref().unwrap_or_default());
        let ddl = format!(
            "CREATE SCHEMA {schema}; CREATE TABLE {schema}.notes (body text); \
             INSERT INTO {schema}.notes VALUES ('note of {slug}')"
        );
        sqlx::raw_sql(AssertSqlSafe(ddl))
            .execute(&mut admin)
            .await?;
        let new = NewTenant::new(slug.clone(), slug.as_str(), Isolation::Schema)?;
        let now = time::OffsetDateTime::now_utc();
        let mut tenant = new.with_placement(placement).into_tenant(now);
        tenant.status = TenantStatus::Active;
        tenants.push(tenant);
        schemas.push(schema);
    }

    let credentials = DerivedCredentials::new(Secret::new("an example master secret, 32 bytes+"))?;
    let app = format!("tm_example_{run}");
    let budget = PoolConfig::default()
        .with_max_total(2)
        .with_max_per_tenant(1);
    let pools = PgTenantConnector::new(ServerMap::single(&url)?, Arc::new(credentials))
        .with_application_name(&app)
        .into_pools(budget)?;

    // Twelve checkouts at once, four per tenant; each reads its own tenant's `notes`.
    let outcome = try_join_all((0..12).map(|i| {
        let (pools, tenant, app) = (&pools, &tenants[i % 3], &app);
        async move {
            let mut conn = pools.acquire(tenant).await?;
            let sql = "SELECT (SELECT body FROM notes), \
                       (SELECT count(*) FROM pg_stat_activity WHERE application_name = $1)";
            let (body, open): (String, i64) =
                sqlx::query_as(sql).bind(app).fetch_one(&mut *conn).await?;
            println!("{} read {body:?}; {open} connections open", tenant.slug);
            match (body == format!("note of {}", tenant.slug), open <= 2) {
                (true, true) => Ok::<_, AnyError>(()),
                _ => Err("a checkout left its tenant or its budget".into()),
            }
        }
    }))
    .await;
    println!("{:#?}", pools.stats());

    for schema in schemas {
        let drop = format!("DROP SCHEMA {schema} CASCADE");
        sqlx::raw_sql(AssertSqlSafe(drop))
            .execute(&mut admin)
            .await?;
    }
    outcome.map(drop)
}
