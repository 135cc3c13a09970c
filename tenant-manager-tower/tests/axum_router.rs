//! The whole request path on an axum `Router`: metrics, tenant resolution, rate limits and the
//! extractors, including what a route missing a layer answers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::{get, post};
use common::{World, assert_middleware_missing, bearer, read, send};
use serde_json::{Value, json};
use tenant_manager_core::pool::fake::{FakeConnection, FakeConnector};
use tenant_manager_core::pool::{PoolConfig, TenantPools};
use tenant_manager_core::*;
use tenant_manager_tower::extract::{Tenant as CurrentTenant, TenantConn};
use tenant_manager_tower::{
    HeaderResolver, JwtResolver, MetricsLayer, QuotaConfig, QuotaLayer, RATELIMIT_LIMIT,
    RATELIMIT_REMAINING, TenantContext, TenantLayer,
};
use tower::ServiceExt;

async fn me(context: TenantContext) -> axum::Json<Value> {
    axum::Json(json!({
        "tenant": context.tenant.id,
        "user": context.user(),
        "role": context.role(),
        "admin": context.has_role(Role::Admin),
    }))
}

async fn name(CurrentTenant(tenant): CurrentTenant) -> String {
    tenant.name
}

async fn maybe(context: Option<TenantContext>) -> String {
    context.map_or_else(|| "anonymous".to_owned(), |c| c.tenant.slug.to_string())
}

async fn connection(_conn: TenantConn<String>) -> &'static str {
    "unreachable without a pool"
}

fn app(world: &World, tenant_rate: u64, login_rate: u64) -> Router {
    let tenant_layer = TenantLayer::builder(world.lookup.clone())
        .with_resolver(JwtResolver::new(world.tokens.clone()))
        .with_resolver(HeaderResolver::x_tenant_id())
        .build()
        .unwrap();
    let tenant_quota = QuotaLayer::new(
        world.quota.clone(),
        QuotaConfig::default().with_rate_policy(move |_: &Tenant| {
            RateLimit::new(tenant_rate, Duration::from_secs(3600)).unwrap()
        }),
    )
    .unwrap();
    let login_quota = QuotaLayer::new(
        world.quota.clone(),
        QuotaConfig::default()
            .with_client_limit(RateLimit::new(login_rate, Duration::from_secs(3600)).unwrap()),
    )
    .unwrap();
    let tenant_routes = Router::new()
        .route("/me", get(me))
        .route("/name", get(name))
        .route("/conn", get(connection))
        .layer(tenant_quota)
        .layer(tenant_layer);
    let public_routes = Router::new()
        .route("/login", post(|| async { "token" }))
        .route("/public", get(maybe))
        .route("/misconfigured", get(name))
        .layer(login_quota);
    tenant_routes
        .merge(public_routes)
        .layer(MetricsLayer::new())
}

fn request(method: &str, uri: &str, headers: &[(&str, &str)]) -> http::Request<Body> {
    let mut builder = http::Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let mut request = builder.body(Body::empty()).unwrap();
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([192, 0, 2, 10], 50_000))));
    request
}

/// A GET request to `uri` carrying `token` as a bearer token.
fn authed(uri: &str, token: &str) -> http::Request<Body> {
    request("GET", uri, &[("authorization", &bearer(token))])
}

#[tokio::test]
async fn the_full_stack_serves_authenticated_tenant_requests() {
    let world = World::new();
    let tenant = world.tenant("acme", TenantStatus::Active).await;
    let (token, user) = world.token(&tenant, Role::Admin);
    let app = app(&world, 2, 10);

    let (status, headers, body) = send(app.clone(), authed("/me", &token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tenant"], json!(tenant.id));
    assert_eq!(body["user"], json!(user));
    assert_eq!(body["admin"], true);
    assert_eq!(headers.get(&RATELIMIT_LIMIT).unwrap(), "2");
    assert_eq!(headers.get(&RATELIMIT_REMAINING).unwrap(), "1");

    let (status, _, body) = send(app.clone(), authed("/name", &token)).await;
    assert_eq!((status, body), (200, Value::String("acme".to_owned())));

    let (status, headers, body) = send(app.clone(), authed("/me", &token)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("quota_exceeded"))
    );
    assert!(headers.contains_key(http::header::RETRY_AFTER));
}

#[tokio::test]
async fn refusals_on_the_router_are_json() {
    let world = World::new();
    let a = world.tenant("alpha", TenantStatus::Active).await;
    world.tenant("bravo", TenantStatus::Active).await;
    let suspended = world.tenant("sleepy", TenantStatus::Suspended).await;
    let (token, _) = world.token(&a, Role::Member);
    let (sleepy_token, _) = world.token(&suspended, Role::Member);
    let (bearer, sleepy_bearer) = (bearer(&token), bearer(&sleepy_token));
    let app = app(&world, 100, 10);

    type Case<'a> = (&'a [(&'a str, &'a str)], u16, &'a str);
    let cases: [Case<'_>; 4] = [
        (
            &[("authorization", &bearer), ("x-tenant-id", "bravo")],
            403,
            "forbidden",
        ),
        (
            &[("authorization", &sleepy_bearer)],
            403,
            "tenant_suspended",
        ),
        (&[("authorization", "Bearer x.y.z")], 401, "unauthenticated"),
        (&[], 401, "unauthenticated"),
    ];
    for (headers, status, code) in cases {
        let (got, headers_out, body) = send(app.clone(), request("GET", "/me", headers)).await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{headers:?}"
        );
        assert_eq!(
            headers_out.get(http::header::CONTENT_TYPE).unwrap(),
            "application/json"
        );
    }
}

#[tokio::test]
async fn login_is_limited_per_client_address() {
    let world = World::new();
    let app = app(&world, 100, 3);
    for _ in 0..3 {
        let (status, _, _) = send(app.clone(), request("POST", "/login", &[])).await;
        assert_eq!(status, 200);
    }
    let (status, headers, _) = send(app.clone(), request("POST", "/login", &[])).await;
    assert_eq!(status, 429);
    assert_eq!(headers.get(&RATELIMIT_REMAINING).unwrap(), "0");
    // Public routes share the address's allowance; optional context is absent there.
    assert_eq!(send(app, request("GET", "/public", &[])).await.0, 429);
}

#[tokio::test]
async fn optional_context_is_none_without_the_tenant_layer() {
    let world = World::new();
    let (status, _, body) = send(app(&world, 100, 10), request("GET", "/public", &[])).await;
    assert_eq!((status, body), (200, Value::String("anonymous".to_owned())));
}

#[tokio::test]
async fn a_missing_layer_is_named_in_the_answer() {
    let world = World::new();
    let tenant = world.tenant("acme", TenantStatus::Active).await;
    let (token, _) = world.token(&tenant, Role::Member);
    let app = app(&world, 100, 10);

    let (status, _, body) = send(app.clone(), request("GET", "/misconfigured", &[])).await;
    assert_middleware_missing(status, &body, "TenantLayer");

    let (status, _, body) = send(app, authed("/conn", &token)).await;
    assert_middleware_missing(status, &body, "Extension");
}

/// The extractor checks a connection scoped to the request's tenant out of the pool engine
/// in the extensions, holds it for the handler, and maps an exhausted pool to `503`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_conn_acquires_through_the_pool_manager() {
    let world = World::new();
    let tenant = world.tenant("acme", TenantStatus::Active).await;
    let (token, _) = world.token(&tenant, Role::Member);
    let engine = TenantPools::new(
        FakeConnector::new(),
        PoolConfig::default()
            .with_max_per_tenant(1)
            .with_acquire_timeout(Duration::from_millis(200)),
    )
    .unwrap();
    let pool: Arc<dyn PoolManager<Connection = FakeConnection>> = Arc::new(engine);
    // (held, release): the holding handler signals it has the connection, then waits.
    let signals = Arc::new((tokio::sync::Notify::new(), tokio::sync::Notify::new()));

    async fn scope(conn: TenantConn<FakeConnection>) -> String {
        conn.query()
            .unwrap()
            .map(|t| t.to_string())
            .unwrap_or_default()
    }
    type Signals = Arc<(tokio::sync::Notify, tokio::sync::Notify)>;
    async fn hold(
        axum::Extension(signals): axum::Extension<Signals>,
        _conn: TenantConn<FakeConnection>,
    ) -> &'static str {
        signals.0.notify_one();
        signals.1.notified().await;
        "released"
    }
    let app = Router::new()
        .route("/scope", get(scope))
        .route("/hold", get(hold))
        .layer(world.jwt_layer())
        .layer(axum::Extension(pool.clone()))
        .layer(axum::Extension(signals.clone()));

    let (status, _, body) = send(app.clone(), authed("/scope", &token)).await;
    assert_eq!((status, body), (200, Value::String(tenant.id.to_string())));

    // One request holds the tenant's only connection; the next waits, then gets 503.
    let holder = tokio::spawn(app.clone().oneshot(authed("/hold", &token)));
    signals.0.notified().await;
    let (status, headers, body) = send(app.clone(), authed("/scope", &token)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("pool_exhausted"))
    );
    assert!(headers.contains_key(http::header::RETRY_AFTER));
    signals.1.notify_one();
    let (status, _, _) = read(holder.await.unwrap().unwrap()).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_moving_tenant_is_admitted_for_its_reads() {
    let world = World::new();
    let moving = world.tenant("mover", TenantStatus::Moving).await;
    let (token, _) = world.token(&moving, Role::Member);
    let app = app(&world, 100, 10);
    let (status, _, body) = send(
        app,
        request("GET", "/me", &[("authorization", &bearer(&token))]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}
