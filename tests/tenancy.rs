//! The whole toolkit through the facade: organizations registered with the `TenantManager`
//! over the in-memory adapters are resolved by the `TenantLayer` from their tokens, and each
//! handler gets a connection scoped to its own tenant's schema in real Postgres.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::routing::get;
use axum::{Extension, Router};
use http_body_util::BodyExt;
use tenant_manager::auth::{HasherConfig, JwtConfig, PasswordHasher, TokenService};
use tenant_manager::lookup::TenantLookup;
use tenant_manager::manager::{ManagerConfig, Registration, TenantManager};
use tenant_manager::memory::{
    InMemoryProvisioner, InMemoryQuotaConfig, InMemoryQuotaEnforcer, InMemoryRegistry,
    InMemoryTenantCache, InMemoryTenantData,
};
use tenant_manager::pool::PoolConfig;
use tenant_manager::postgres::sqlx::{self, AssertSqlSafe, Connection, PgConnection};
use tenant_manager::postgres::{DerivedCredentials, PgTenantConnector, ServerMap, quote_ident};
use tenant_manager::tower::extract::TenantConn;
use tenant_manager::tower::{JwtResolver, TenantContext, TenantLayer};
use tenant_manager::{Isolation, PoolManager, Secret, Tenant};
use tenant_manager_test_support::TestDatabase;
use tower::ServiceExt;

/// The tenant the layer admitted, and what its connection sees.
async fn whoami(context: TenantContext, mut conn: TenantConn<sqlx::PgConnection>) -> String {
    let (schema, note): (String, String) =
        sqlx::query_as("SELECT current_schema()::text, (SELECT body FROM notes)")
            .fetch_one(&mut *conn)
            .await
            .expect("scoped query");
    format!("{} {schema} {note}", context.tenant.slug)
}

async fn get_with(app: &Router, token: Option<&str>) -> (u16, String) {
    let mut request = http::Request::builder().uri("/whoami");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_tenants_are_resolved_and_get_their_own_scoped_connection() {
    let db = TestDatabase::create().await;
    let registry = Arc::new(InMemoryRegistry::new());
    let cache = Arc::new(InMemoryTenantCache::default());
    let tokens = TokenService::new(JwtConfig::hs256("facade-tests-jwt-secret-0123456789abcdef"))
        .expect("tokens");
    let manager = TenantManager::builder()
        .with_registry(registry.clone())
        .with_provisioner(Arc::new(InMemoryProvisioner::new(Arc::new(
            InMemoryTenantData::new(),
        ))))
        .with_quota(Arc::new(
            InMemoryQuotaEnforcer::new(InMemoryQuotaConfig::default()).expect("quota"),
        ))
        .with_cache(cache.clone())
        .with_hasher(
            PasswordHasher::new(HasherConfig::default().with_params(256, 1, 1)).expect("hasher"),
        )
        .with_tokens(tokens.clone())
        .with_config(
            ManagerConfig::default()
                .with_default_isolation(Isolation::Schema)
                .with_shared_database(db.name()),
        )
        .build()
        .expect("manager");

    // Two organizations; each tenant's schema holds a note naming it (its storage, which the
    // Postgres provisioner would create).
    let mut admin = PgConnection::connect(db.url()).await.expect("admin");
    let mut registered = Vec::new();
    for (name, email) in [("Acme", "owner@acme.test"), ("Globex", "owner@globex.test")] {
        let registration = Registration::new(name, email, "a long enough password 123!");
        let done = manager
            .register_organization(registration)
            .await
            .expect("register");
        let tenant: &Tenant = &done.tenant;
        let schema = tenant.placement.schema.clone().expect("schema tenant");
        let q = quote_ident(&schema);
        let ddl = format!(
            "CREATE SCHEMA {q}; CREATE TABLE {q}.notes (body text); \
             INSERT INTO {q}.notes VALUES ('note-of-{}')",
            tenant.slug
        );
        sqlx::raw_sql(AssertSqlSafe(ddl))
            .execute(&mut admin)
            .await
            .expect("ddl");
        registered.push((done, schema));
    }

    let credentials = DerivedCredentials::new(Secret::new("facade-tests-master-secret-0123456789"));
    let pools: Arc<dyn PoolManager<Connection = PgConnection>> = Arc::new(
        PgTenantConnector::new(
            ServerMap::single(db.admin_url()).expect("servers"),
            Arc::new(credentials.expect("credentials")),
        )
        .into_pools(PoolConfig::default().with_max_total(2))
        .expect("pools"),
    );
    let layer = TenantLayer::builder(TenantLookup::new(registry, cache))
        .with_resolver(JwtResolver::new(tokens))
        .build()
        .expect("layer");
    let app = Router::new()
        .route("/whoami", get(whoami))
        .layer(Extension(pools))
        .layer(layer);

    for _ in 0..2 {
        for (done, schema) in &registered {
            let token = done.token.access_token.expose();
            let (status, body) = get_with(&app, Some(token)).await;
            let slug = &done.tenant.slug;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body, format!("{slug} {schema} note-of-{slug}"));
        }
    }
    let (status, body) = get_with(&app, None).await;
    assert_eq!(status, 401, "no token, no tenant: {body}");
}
