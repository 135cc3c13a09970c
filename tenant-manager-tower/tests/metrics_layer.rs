//! `MetricsLayer` checked with a metrics recorder: route templates (never raw paths), the
//! `unmatched` fallback, status labels, refusals of inner layers, the opt-in tenant label.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use axum::Router;
use axum::routing::get as route_get;
use common::{Echo, World, get, get_bearer, send};
use metrics_util::MetricKind;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tenant_manager_core::{Role, TenantStatus};
use tenant_manager_tower::{
    HeaderResolver, JwtResolver, MetricsConfig, MetricsLayer, REQUESTS_TOTAL, RESPONSE_TIME,
    RouteTemplate, TenantLabels, TenantLayer,
};
use tower::{Layer, ServiceBuilder};

/// One recorded series: kind, name, labels, and the count (counter) or number of samples
/// (histogram).
type Series = (MetricKind, String, BTreeMap<String, String>, u64);

fn series(snapshotter: &Snapshotter) -> Vec<Series> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let labels = key
                .key()
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            let amount = match value {
                DebugValue::Counter(n) => n,
                DebugValue::Histogram(samples) => samples.len() as u64,
                DebugValue::Gauge(_) => 0,
            };
            (key.kind(), key.key().name().to_owned(), labels, amount)
        })
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The total of the series of `kind` named `name` whose labels are exactly `pairs`.
fn total(all: &[Series], kind: MetricKind, name: &str, pairs: &[(&str, &str)]) -> u64 {
    let wanted = labels(pairs);
    all.iter()
        .filter(|(k, n, l, _)| *k == kind && n == name && *l == wanted)
        .map(|s| s.3)
        .sum()
}

/// Requests counted with exactly the labels `pairs`.
fn counter(all: &[Series], pairs: &[(&str, &str)]) -> u64 {
    total(all, MetricKind::Counter, REQUESTS_TOTAL, pairs)
}

/// Requests counted with `method`, `route` and `status` (and no other label).
fn requests(all: &[Series], method: &str, route: &str, status: &str) -> u64 {
    counter(
        all,
        &[("method", method), ("route", route), ("status", status)],
    )
}

/// Response times sampled for `method` and `route`.
fn histogram_samples(all: &[Series], method: &str, route: &str) -> u64 {
    total(
        all,
        MetricKind::Histogram,
        RESPONSE_TIME,
        &[("method", method), ("route", route)],
    )
}

#[tokio::test]
async fn service_fn_routes_come_from_templates_or_fall_back() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let service = MetricsLayer::new().layer(Echo::default().service());
    let mut templated = get("/users/42", &[]);
    templated
        .extensions_mut()
        .insert(RouteTemplate::new("/users/{id}"));
    send(service.clone(), templated).await;
    send(service.clone(), get("/users/43", &[])).await;
    let mut post = get("/users/44", &[]);
    *post.method_mut() = http::Method::POST;
    send(service, post).await;

    let all = series(&snapshotter);
    assert_eq!(requests(&all, "GET", "/users/{id}", "200"), 1);
    assert_eq!(requests(&all, "GET", "unmatched", "200"), 1);
    assert_eq!(requests(&all, "POST", "unmatched", "200"), 1);
    assert_eq!(histogram_samples(&all, "GET", "/users/{id}"), 1);
    assert!(
        all.iter()
            .all(|(_, _, l, _)| l.values().all(|v| !v.contains("42") && !v.contains("43"))),
        "raw paths never become labels: {all:?}"
    );
}

async fn ok() -> &'static str {
    "ok"
}

#[tokio::test]
async fn axum_matched_paths_are_the_route_label() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let app = Router::new()
        .route("/users/{id}", route_get(ok))
        .route("/health", route_get(ok))
        .layer(MetricsLayer::new());
    for uri in ["/users/1", "/users/2", "/health", "/nowhere/3"] {
        let request = http::Request::get(uri)
            .body(axum::body::Body::empty())
            .unwrap();
        send(app.clone(), request).await;
    }
    let all = series(&snapshotter);
    assert_eq!(requests(&all, "GET", "/users/{id}", "200"), 2);
    assert_eq!(requests(&all, "GET", "/health", "200"), 1);
    assert_eq!(histogram_samples(&all, "GET", "/users/{id}"), 2);
    assert!(
        all.iter()
            .all(|(_, _, l, _)| l.values().all(|v| !v.contains("/users/1"))),
        "{all:?}"
    );
}

#[tokio::test]
async fn an_outermost_metrics_layer_counts_the_refusals_of_the_tenant_layer() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let world = World::new();
    let service = ServiceBuilder::new()
        .layer(MetricsLayer::new())
        .layer(world.jwt_layer())
        .service(Echo::default().service());
    let mut request = get_bearer("/items", "nope");
    request
        .extensions_mut()
        .insert(RouteTemplate::new("/items"));
    let (status, _, _) = send(service, request).await;
    assert_eq!(status, 401);
    let all = series(&snapshotter);
    assert_eq!(requests(&all, "GET", "/items", "401"), 1);
}

#[tokio::test]
async fn the_tenant_label_is_opt_in_and_bounded() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let world = World::new();
    let big = world.tenant("bigcorp", TenantStatus::Active).await;
    let small = world.tenant("smallco", TenantStatus::Active).await;
    let (big_token, _) = world.token(&big, Role::Member);
    let (small_token, _) = world.token(&small, Role::Member);
    let tenant_layer = TenantLayer::builder(world.lookup.clone())
        .with_resolver(JwtResolver::new(world.tokens.clone()))
        .with_resolver(HeaderResolver::x_tenant_id())
        .build()
        .unwrap();
    let labelled = ServiceBuilder::new()
        .layer(tenant_layer.clone())
        .layer(MetricsLayer::with_config(
            MetricsConfig::default().with_tenant_labels(TenantLabels::new([big.id]).unwrap()),
        ))
        .service(Echo::default().service());
    for token in [&big_token, &small_token] {
        let (status, _, _) = send(labelled.clone(), get_bearer("/", token)).await;
        assert_eq!(status, 200);
    }
    let unlabelled = ServiceBuilder::new()
        .layer(tenant_layer)
        .layer(MetricsLayer::new())
        .service(Echo::default().service());
    send(unlabelled, get("/", &[("x-tenant-id", "smallco")])).await;

    let all = series(&snapshotter);
    let base = [("method", "GET"), ("route", "unmatched"), ("status", "200")];
    let with = |tenant| {
        let mut pairs = base.to_vec();
        pairs.push(("tenant", tenant));
        counter(&all, &pairs)
    };
    assert_eq!(with("bigcorp"), 1);
    assert_eq!(with("other"), 1, "unlisted tenants share one value");
    assert_eq!(counter(&all, &base), 1, "no tenant label unless configured");
}
