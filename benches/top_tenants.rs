//! Cost of recording the busiest tenants on the request path, in one run: the request path
//! bare, with `TopTenantsLayer`, and with `MetricsLayer` (two `metrics` records into a
//! Prometheus recorder); the record alone against a plain `metrics` counter increment; and
//! the `topk` crate's Filtered Space-Saving behind a mutex (the crate considered instead).
//!
//! ```sh
//! cargo bench --bench top_tenants --features tower
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response, Uri};
use http_body_util::Full;
use tenant_manager::memory::InMemoryRegistry;
use tenant_manager::topk::{TopTenants, TopTenantsConfig};
use tenant_manager::tower::{
    MetricsLayer, ResolvedBy, RouteTemplate, TenantContext, TopTenantsLayer,
};
use tenant_manager::{
    Isolation, NewTenant, Tenant, TenantId, TenantRegistry, TenantSlug, TenantStatus,
};
use tower::{Service, ServiceBuilder, ServiceExt};

type Body = Full<Bytes>;

fn handler()
-> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send> + Clone
{
    tower::service_fn(|_request: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
            b"{\"ok\":true}",
        ))))
    })
}

/// A request as it leaves the `TenantLayer`: route template and tenant context attached.
fn request(context: &TenantContext, route: &RouteTemplate) -> Request<Body> {
    let mut request = Request::new(Full::new(Bytes::new()));
    *request.uri_mut() = Uri::from_static("/items/42");
    request.extensions_mut().insert(route.clone());
    request.extensions_mut().insert(context.clone());
    request
}

async fn tenant() -> Tenant {
    let registry = InMemoryRegistry::new();
    let new = NewTenant::new(TenantSlug::new("acme").unwrap(), "Acme", Isolation::Shared).unwrap();
    let tenant = registry.create_tenant(new).await.unwrap();
    for status in [TenantStatus::Provisioning, TenantStatus::Active] {
        registry.transition(tenant.id, status, None).await.unwrap();
    }
    registry.get_tenant(tenant.id).await.unwrap()
}

fn install_recorder() {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .unwrap();
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
    let context = TenantContext::new(runtime.block_on(tenant()), ResolvedBy::Jwt);
    let route = RouteTemplate::new("/items/{id}");
    let top = Arc::new(TopTenants::new(TopTenantsConfig::default()).unwrap());

    let mut group = c.benchmark_group("top_tenants");
    macro_rules! per_request {
        ($name:literal, $service:expr) => {
            let service = $service;
            group.bench_function($name, |b| {
                b.to_async(&runtime).iter(|| {
                    let service = service.clone();
                    let request = request(&context, &route);
                    async move { black_box(service.oneshot(request).await.unwrap()) }
                })
            });
        };
    }
    per_request!("request: bare", handler());
    per_request!(
        "request: TopTenantsLayer",
        ServiceBuilder::new()
            .layer(TopTenantsLayer::new(top.clone()))
            .service(handler())
    );
    per_request!(
        "request: MetricsLayer (metrics counter + histogram)",
        ServiceBuilder::new()
            .layer(MetricsLayer::new())
            .service(handler())
    );

    // The record alone. A monitored tenant (the usual case: the busy ones are in the sketch)
    // and a churn of 1,000 tenants through K = 20 counters (every record evicts).
    let (id, slug) = (context.tenant.id, context.tenant.slug.clone());
    group.bench_function("record: monitored tenant", |b| {
        b.iter(|| {
            top.record(
                black_box(id),
                &slug,
                false,
                Duration::from_micros(800),
                Instant::now(),
            )
        })
    });
    let churn: Vec<TenantId> = (0..1000).map(|_| TenantId::new()).collect();
    let mut at = 0;
    group.bench_function("record: 1,000 tenants through 20 counters", |b| {
        b.iter(|| {
            at = (at + 1) % churn.len();
            top.record(
                churn[at],
                &slug,
                false,
                Duration::from_micros(800),
                Instant::now(),
            )
        })
    });
    group.bench_function("metrics counter increment (same labels each time)", |b| {
        b.iter(|| metrics::counter!("bench_requests_total", "route" => "/items/{id}").increment(1))
    });
    // The topk crate's sketch: counts only (no per-tenant errors or latency), not Sync.
    let fss = Mutex::new(topk::FilteredSpaceSaving::<TenantId>::new(20));
    group.bench_function(
        "topk crate FilteredSpaceSaving::insert behind a mutex",
        |b| b.iter(|| fss.lock().unwrap().insert(black_box(id), 1)),
    );
    let mut at = 0;
    group.bench_function("topk crate, 1,000 tenants through 20 counters", |b| {
        b.iter(|| {
            at = (at + 1) % churn.len();
            fss.lock().unwrap().insert(churn[at], 1)
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
