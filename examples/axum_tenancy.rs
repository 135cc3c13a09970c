//! Tenancy added to an existing axum app: the `TenantLayer` finds the tenant (`X-Tenant-Id`),
//! the handler takes the `Tenant` and `TenantConn` extractors, its query runs in the tenant's
//! schema. Registry in memory; data in your Postgres (`TEST_DATABASE_URL`, `DATABASE_URL`).
//! Run: `cargo run --example axum_tenancy --features axum,postgres`

use std::sync::Arc;

use axum::{Extension, Router, routing::get};
use tenant_manager::core::lookup::TenantLookup;
use tenant_manager::core::memory::{InMemoryRegistry, InMemoryTenantCache};
use tenant_manager::postgres::sqlx::{self, AssertSqlSafe, Connection, PgConnection};
use tenant_manager::postgres::{DerivedCredentials, PgTenantConnector, ServerMap, quote_ident};
use tenant_manager::tower::extract::{Tenant, TenantConn};
use tenant_manager::tower::{HeaderResolver, TenantLayer};
use tenant_manager::{Isolation, NewTenant, Placement, PoolManager, Secret, ServerId};
use tenant_manager::{TenantRegistry, TenantSlug, TenantStatus::*};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type AnyError = Box<dyn std::error::Error + Send + Sync>;

/// The app's handler, now given its tenant and a connection scoped to that tenant.
async fn notes(Tenant(tenant): Tenant, mut conn: TenantConn<PgConnection>) -> String {
    let query = sqlx::query_as::<_, (String,)>("SELECT body FROM notes").fetch_one(&mut *conn);
    query.await.map_or_else(
        |e| format!("error: {e}"),
        |(body,)| format!("{}: {body}", tenant.slug),
    )
}

#[tokio::main]
async fn main() -> Result<(), AnyError> {
    let url = std::env::var("TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let database = url.rsplit('/').next().and_then(|db| db.split('?').next());
    let (database, server) = (database.unwrap_or("postgres"), ServerId::default_server());

    // One tenant in the registry, its storage a schema (what PostgresProvisioner does for real).
    let registry = Arc::new(InMemoryRegistry::new());
    let slug = TenantSlug::new(format!("acme_{}", std::process::id()))?;
    let placement = Placement::conventional(&slug, Isolation::Schema, server, database);
    let schema = quote_ident(placement.schema.as_deref().unwrap_or_default());
    let new = NewTenant::new(slug.clone(), "Acme", Isolation::Schema)?.with_placement(placement);
    let id = registry.create_tenant(new).await?.id;
    registry.transition(id, Provisioning, None).await?;
    registry.transition(id, Active, None).await?;
    let mut admin = PgConnection::connect(&url).await?;
    let ddl = format!("CREATE SCHEMA {schema}; CREATE TABLE {schema}.notes AS SELECT 'hi' body");
    sqlx::raw_sql(AssertSqlSafe(ddl))
        .execute(&mut admin)
        .await?;

    let credentials = DerivedCredentials::new(Secret::new("an example master secret, 32 bytes+"))?;
    let connector = PgTenantConnector::new(ServerMap::single(&url)?, Arc::new(credentials));
    let pools: Arc<dyn PoolManager<Connection = PgConnection>> =
        Arc::new(connector.into_pools(Default::default())?);
    let lookup = TenantLookup::new(registry, Arc::new(InMemoryTenantCache::default()));
    let tenancy = TenantLayer::builder(lookup).with_resolver(HeaderResolver::x_tenant_id());
    let app = Router::new()
        .route("/notes", get(notes))
        .layer(Extension(pools))
        .layer(tenancy.build()?);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?; // a free port
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let mut ok = true;
    for (tenant, want) in [(slug.as_str(), "200 OK"), ("nobody_here", "401")] {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let head = format!("GET /notes HTTP/1.1\r\nHost: app\r\nX-Tenant-Id: {tenant}\r\n");
        stream
            .write_all(format!("{head}Connection: close\r\n\r\n").as_bytes())
            .await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        println!("X-Tenant-Id: {tenant}\n{answer}\n");
        ok &= answer.starts_with(&format!("HTTP/1.1 {want}"));
        ok &= tenant != slug.as_str() || answer.ends_with(&format!("{slug}: hi"));
    }
    server.abort();
    sqlx::raw_sql(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut admin)
        .await?;
    match ok {
        true => Ok(()),
        false => Err("the tenant was not served from its schema, or a stranger got in".into()),
    }
}
