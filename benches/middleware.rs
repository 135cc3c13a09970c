//! Cost of the tower request path: the full stack (HS256 verify, cached tenant resolution,
//! in-memory quota, metrics into a Prometheus recorder) against the same handler bare, in the
//! same run, plus each layer alone to show where the time goes.
//!
//! ```sh
//! cargo bench --bench middleware --features tower
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::convert::Infallible;
use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response, Uri};
use http_body_util::Full;
use tenant_manager::auth::{JwtConfig, TokenService};
use tenant_manager::lookup::TenantLookup;
use tenant_manager::memory::{
    InMemoryQuotaConfig, InMemoryQuotaEnforcer, InMemoryRegistry, InMemoryTenantCache,
};
use tenant_manager::tower::{
    ClientAddr, HeaderResolver, JwtResolver, MetricsLayer, QuotaConfig, QuotaLayer, RouteTemplate,
    TenantLayer,
};
use tenant_manager::{
    CacheKey, Email, Isolation, NewTenant, NewUser, PasswordHash, RateLimit, Role, Tenant,
    TenantCache, TenantId, TenantRegistry, TenantSlug, TenantStatus,
};
use tower::{Service, ServiceBuilder, ServiceExt};

type Body = Full<Bytes>;

/// The handler every variant wraps: a static 200.
fn handler()
-> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send> + Clone
{
    tower::service_fn(|_request: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
            b"{\"ok\":true}",
        ))))
    })
}

/// A request as a router would hand it over: route template, peer address, bearer token.
fn request(bearer: &HeaderValue, route: &RouteTemplate) -> Request<Body> {
    let mut request = Request::new(Full::new(Bytes::new()));
    *request.uri_mut() = Uri::from_static("/items/42");
    request.headers_mut().insert(AUTHORIZATION, bearer.clone());
    request
        .headers_mut()
        .insert("x-tenant-id", HeaderValue::from_static("acme"));
    request.extensions_mut().insert(route.clone());
    request
        .extensions_mut()
        .insert(ClientAddr(IpAddr::from([192, 0, 2, 1])));
    request
}

struct Fixture {
    lookup: TenantLookup,
    tokens: TokenService,
    quota: Arc<InMemoryQuotaEnforcer>,
    bearer: HeaderValue,
    token: String,
    tenant: TenantId,
}

async fn fixture() -> Fixture {
    let registry = Arc::new(InMemoryRegistry::new());
    let cache: Arc<dyn TenantCache> = Arc::new(InMemoryTenantCache::default());
    let lookup = TenantLookup::new(registry.clone() as Arc<dyn TenantRegistry>, cache);
    let tokens = TokenService::new(JwtConfig::hs256("bench-secret-bench-secret-bench-secret!"))
        .expect("token service");
    let quota = Arc::new(InMemoryQuotaEnforcer::new(InMemoryQuotaConfig::default()).unwrap());

    let new = NewTenant::new(TenantSlug::new("acme").unwrap(), "Acme", Isolation::Shared).unwrap();
    let tenant: Tenant = registry.create_tenant(new).await.unwrap();
    for status in [TenantStatus::Provisioning, TenantStatus::Active] {
        registry.transition(tenant.id, status, None).await.unwrap();
    }
    let user = NewUser::new(
        tenant.id,
        Email::new("bench@example.com").unwrap(),
        Role::Member,
        PasswordHash::from_phc("$argon2id$unused"),
    )
    .into_user(time::OffsetDateTime::now_utc());
    let token = tokens
        .issue(&user)
        .unwrap()
        .access_token
        .expose()
        .to_owned();
    let bearer = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
    Fixture {
        lookup,
        tokens,
        quota,
        bearer,
        token,
        tenant: tenant.id,
    }
}

/// A limit the bench never reaches, so every request takes the admitted path.
fn unlimited() -> RateLimit {
    RateLimit::new(1_000_000_000_000, Duration::from_secs(3600)).unwrap()
}

fn install_recorder() {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&[
            0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0,
        ])
        .unwrap()
        .install_recorder()
        .unwrap();
    // What the exporter does in a server: fold samples into buckets now and then.
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_secs(1));
            handle.run_upkeep();
        }
    });
}

fn bench(c: &mut Criterion) {
    install_recorder();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let fixture = runtime.block_on(fixture());
    let route = RouteTemplate::new("/items/{id}");

    let tenant_layer = TenantLayer::builder(fixture.lookup.clone())
        .with_resolver(JwtResolver::new(fixture.tokens.clone()))
        .build()
        .unwrap();
    let quota_layer = QuotaLayer::new(
        fixture.quota.clone(),
        QuotaConfig::default()
            .with_rate_policy(|_: &Tenant| unlimited())
            .with_client_limit(unlimited()),
    )
    .unwrap();

    let bare = handler();
    let full = ServiceBuilder::new()
        .layer(MetricsLayer::new())
        .layer(tenant_layer.clone())
        .layer(quota_layer.clone())
        .service(handler());
    let tenant_only = ServiceBuilder::new().layer(tenant_layer).service(handler());
    let header_only = ServiceBuilder::new()
        .layer(
            TenantLayer::builder(fixture.lookup.clone())
                .with_resolver(HeaderResolver::x_tenant_id())
                .build()
                .unwrap(),
        )
        .service(handler());
    let quota_only = ServiceBuilder::new().layer(quota_layer).service(handler());
    let metrics_only = ServiceBuilder::new()
        .layer(MetricsLayer::new())
        .service(handler());

    // Warm the tenant cache, as a running server's would be.
    let warm = runtime.block_on(full.clone().oneshot(request(&fixture.bearer, &route)));
    assert_eq!(warm.map(|r| r.status().as_u16()).ok(), Some(200));

    let mut group = c.benchmark_group("middleware");
    macro_rules! per_request {
        ($name:literal, $service:expr) => {
            let service = $service;
            group.bench_function($name, |b| {
                b.to_async(&runtime).iter(|| {
                    let service = service.clone();
                    let request = request(&fixture.bearer, &route);
                    async move {
                        let response = service.oneshot(request).await.unwrap();
                        assert_eq!(response.status(), 200);
                        black_box(response)
                    }
                })
            });
        };
    }
    per_request!("bare handler", bare);
    per_request!("full stack", full.clone());
    per_request!("tenant layer (jwt + cached lookup)", tenant_only);
    per_request!(
        "tenant layer (x-tenant-id header + cached lookup)",
        header_only
    );
    per_request!("quota layer (in-memory)", quota_only);
    per_request!("metrics layer", metrics_only);
    // Both paths in turns within one measurement, so a machine whose load changes between
    // benchmarks still yields the difference: the cost the stack adds to each request.
    let (bare_turn, full_turn) = (handler(), full.clone());
    group.bench_function("added cost (full stack minus bare, interleaved)", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let (mut bare_time, mut full_time) = (Duration::ZERO, Duration::ZERO);
                for _ in 0..iters {
                    let request_bare = request(&fixture.bearer, &route);
                    let request_full = request(&fixture.bearer, &route);
                    let started = Instant::now();
                    black_box(bare_turn.clone().oneshot(request_bare).await.unwrap());
                    bare_time += started.elapsed();
                    let started = Instant::now();
                    black_box(full_turn.clone().oneshot(request_full).await.unwrap());
                    full_time += started.elapsed();
                }
                full_time.saturating_sub(bare_time)
            })
        })
    });
    group.bench_function("hs256 verify alone", |b| {
        b.iter(|| black_box(fixture.tokens.verify(black_box(&fixture.token)).unwrap()))
    });
    let key = CacheKey::Id(fixture.tenant);
    group.bench_function("cached lookup alone", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(fixture.lookup.get(&key).await.unwrap()) })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
