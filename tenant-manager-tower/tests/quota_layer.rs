//! `QuotaLayer` over a plain `tower::service_fn` and the real in-memory enforcer: per-tenant
//! and per-client limits, `RateLimit-*` headers, 429, trusted proxy headers, fail open/closed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use common::{Echo, World, assert_middleware_missing, get, get_as, send};
use http::header::RETRY_AFTER;
use http::{HeaderMap, Request};
use http_body_util::Full;
use serde_json::Value;
use tenant_manager_core::*;
use tenant_manager_tower::{
    ClientAddr, ClientIpSource, FailMode, QuotaConfig, QuotaLayer, QuotaScope, RATELIMIT_LIMIT,
    RATELIMIT_REMAINING, RATELIMIT_RESET,
};
use tower::Layer;

fn rate(limit: u64, window: Duration) -> RateLimit {
    RateLimit::new(limit, window).unwrap()
}

fn header(headers: &HeaderMap, name: &http::HeaderName) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.parse().ok()
}

/// Sends `request` through `layer` over a fresh echo service.
async fn through(layer: &QuotaLayer, request: Request<Full<Bytes>>) -> (u16, HeaderMap, Value) {
    send(layer.layer(Echo::default().service()), request).await
}

fn from_peer(mut request: Request<Full<Bytes>>, ip: [u8; 4]) -> Request<Full<Bytes>> {
    request
        .extensions_mut()
        .insert(ClientAddr(IpAddr::from(ip)));
    request
}

#[tokio::test]
async fn a_tenant_gets_its_plan_rate_then_429_with_headers() {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let world = World::new();
    let tenant = world.tenant("acme", TenantStatus::Active).await;
    let plans = PlanCatalog::new(QuotaPolicy::default()).with_plan(
        Plan::free(),
        QuotaPolicy {
            rate: rate(3, Duration::from_secs(3600)),
            ..QuotaPolicy::default()
        },
    );
    let layer = QuotaLayer::new(
        world.quota.clone(),
        QuotaConfig::default().with_plans(plans),
    )
    .unwrap();
    let echo = Echo::default();

    for expected_remaining in [2, 1, 0] {
        let (status, headers, _) = send(layer.layer(echo.service()), get_as(&tenant)).await;
        assert_eq!(status, 200);
        assert_eq!(header(&headers, &RATELIMIT_LIMIT), Some(3));
        assert_eq!(
            header(&headers, &RATELIMIT_REMAINING),
            Some(expected_remaining)
        );
        assert!(header(&headers, &RATELIMIT_RESET).is_some_and(|s| s <= 3600));
    }
    let (status, headers, body) = send(layer.layer(echo.service()), get_as(&tenant)).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["code"], "quota_exceeded");
    assert!(header(&headers, &RETRY_AFTER).is_some_and(|s| s >= 1));
    assert_eq!(header(&headers, &RATELIMIT_REMAINING), Some(0));
    assert_eq!(header(&headers, &RATELIMIT_LIMIT), Some(3));
    assert_eq!(
        echo.calls(),
        3,
        "the refused request never reached the service"
    );
    let rejections: Vec<_> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == tenant_manager_tower::REJECTIONS_TOTAL)
        .map(|(key, _, _, value)| {
            let labels: Vec<_> = key
                .key()
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            (labels, value)
        })
        .collect();
    assert_eq!(
        rejections,
        vec![(
            vec!["scope=tenant".to_owned()],
            metrics_util::debugging::DebugValue::Counter(1)
        )]
    );

    // Another tenant has its own allowance.
    let other = world.tenant("other", TenantStatus::Active).await;
    let (status, _, _) = send(layer.layer(echo.service()), get_as(&other)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_tenant_override_beats_its_plan_and_closures_are_policies() {
    let world = World::new();
    let tenant = world.tenant("acme", TenantStatus::Active).await;
    let tenant = world
        .registry
        .update_tenant(
            tenant.id,
            TenantUpdate::default().with_quota(Some(QuotaPolicy {
                rate: rate(1, Duration::from_secs(3600)),
                ..QuotaPolicy::default()
            })),
        )
        .await
        .unwrap();
    let layer = QuotaLayer::new(world.quota.clone(), QuotaConfig::default()).unwrap();
    let (_, headers, _) = through(&layer, get_as(&tenant)).await;
    assert_eq!(header(&headers, &RATELIMIT_LIMIT), Some(1));
    assert_eq!(through(&layer, get_as(&tenant)).await.0, 429);

    let other = world.tenant("other", TenantStatus::Active).await;
    let layer = QuotaLayer::new(
        world.quota.clone(),
        QuotaConfig::default().with_rate_policy(|_: &Tenant| rate(7, Duration::from_secs(60))),
    )
    .unwrap();
    let (_, headers, _) = through(&layer, get_as(&other)).await;
    assert_eq!(header(&headers, &RATELIMIT_LIMIT), Some(7));
}

#[tokio::test]
async fn unauthenticated_requests_are_limited_per_client_address() {
    let world = World::new();
    let layer = QuotaLayer::new(
        world.quota.clone(),
        QuotaConfig::default().with_client_limit(rate(2, Duration::from_secs(600))),
    )
    .unwrap();
    let login_from = |ip| from_peer(get("/login", &[]), ip);

    for _ in 0..2 {
        assert_eq!(through(&layer, login_from([192, 0, 2, 1])).await.0, 200);
    }
    let (status, headers, _) = through(&layer, login_from([192, 0, 2, 1])).await;
    assert_eq!(status, 429);
    assert!(headers.contains_key(RETRY_AFTER));
    // Another address is not affected, and a spoofed X-Forwarded-For is ignored by default.
    let spoofed = from_peer(
        get("/login", &[("x-forwarded-for", "203.0.113.9")]),
        [192, 0, 2, 1],
    );
    assert_eq!(through(&layer, spoofed).await.0, 429);
    assert_eq!(through(&layer, login_from([192, 0, 2, 2])).await.0, 200);

    // axum's ConnectInfo is a peer address too.
    let mut request = get("/login", &[]);
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(SocketAddr::from((
            [192, 0, 2, 1],
            4000,
        ))));
    assert_eq!(through(&layer, request).await.0, 429);
}

#[tokio::test]
async fn a_trusted_proxy_header_is_used_only_when_enabled() {
    let world = World::new();
    let layer = QuotaLayer::new(
        world.quota.clone(),
        QuotaConfig::default()
            .with_client_limit(rate(1, Duration::from_secs(600)))
            .with_client_ip(ClientIpSource::forwarded_for(1)),
    )
    .unwrap();
    let proxy = [10, 0, 0, 1];
    let call = |client: &str| {
        let forwarded = format!("6.6.6.6, {client}");
        let request = from_peer(get("/login", &[("x-forwarded-for", &forwarded)]), proxy);
        through(&layer, request)
    };
    assert_eq!(call("198.51.100.1").await.0, 200);
    assert_eq!(call("198.51.100.1").await.0, 429);
    assert_eq!(
        call("198.51.100.2").await.0,
        200,
        "one key per client behind the proxy"
    );

    assert!(
        QuotaLayer::new(
            world.quota.clone(),
            QuotaConfig::default().with_client_ip(ClientIpSource::forwarded_for(0))
        )
        .is_err()
    );
    let mut zero = QuotaConfig::default();
    zero.client_limit = RateLimit {
        limit: 0,
        window_ms: 1000,
    };
    assert!(QuotaLayer::new(world.quota.clone(), zero).is_err());
}

#[tokio::test]
async fn client_scope_counts_addresses_even_with_a_tenant() {
    let world = World::new();
    let tenant = world.tenant("acme", TenantStatus::Active).await;
    let layer = QuotaLayer::new(
        world.quota.clone(),
        QuotaConfig::default()
            .with_scope(QuotaScope::Client)
            .with_client_limit(rate(5, Duration::from_secs(600))),
    )
    .unwrap();
    let request = from_peer(get_as(&tenant), [192, 0, 2, 5]);
    let (_, headers, _) = through(&layer, request).await;
    assert_eq!(header(&headers, &RATELIMIT_LIMIT), Some(5));
}

#[tokio::test]
async fn missing_tenant_or_address_names_what_to_add() {
    let world = World::new();
    let layer = QuotaLayer::new(world.quota.clone(), QuotaConfig::default()).unwrap();
    let (status, _, body) = through(&layer, get("/", &[])).await;
    assert_middleware_missing(status, &body, "connect_info");

    let layer = QuotaLayer::new(
        world.quota.clone(),
        QuotaConfig::default().with_scope(QuotaScope::Tenant),
    )
    .unwrap();
    let request = from_peer(get("/", &[]), [192, 0, 2, 1]);
    let (status, _, body) = through(&layer, request).await;
    assert_middleware_missing(status, &body, "TenantLayer");
}

/// An enforcer whose backend is down.
#[derive(Debug)]
struct DownEnforcer;

fn down() -> Error {
    Error::unavailable(
        "test quota store",
        std::io::Error::other("connection refused"),
    )
}

#[async_trait]
impl QuotaEnforcer for DownEnforcer {
    async fn check_rate(&self, _: &RateKey, _: &RateLimit, _: u32) -> Result<RateDecision> {
        Err(down())
    }
    async fn consume_usage(
        &self,
        _: TenantId,
        _: UsageKind,
        _: i64,
        _: u64,
    ) -> Result<UsageDecision> {
        Err(down())
    }
    async fn set_usage(&self, _: TenantId, _: UsageKind, _: u64) -> Result<()> {
        Err(down())
    }
    async fn usage(&self, _: TenantId, _: UsageKind) -> Result<u64> {
        Err(down())
    }
    async fn reset_tenant(&self, _: TenantId) -> Result<()> {
        Err(down())
    }
}

#[tokio::test]
async fn an_unavailable_enforcer_fails_open_or_closed_as_configured() {
    let world = World::new();
    let tenant = world.tenant("acme", TenantStatus::Active).await;

    let open = QuotaLayer::new(Arc::new(DownEnforcer), QuotaConfig::default()).unwrap();
    let echo = Echo::default();
    let (status, headers, _) = send(open.layer(echo.service()), get_as(&tenant)).await;
    assert_eq!(status, 200);
    assert!(
        !headers.contains_key(RATELIMIT_LIMIT),
        "no decision, no headers"
    );
    assert_eq!(echo.calls(), 1);

    let closed = QuotaLayer::new(
        Arc::new(DownEnforcer),
        QuotaConfig::default().with_fail_mode(FailMode::Closed),
    )
    .unwrap();
    let echo = Echo::default();
    let (status, headers, body) = send(closed.layer(echo.service()), get_as(&tenant)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("backend_unavailable"))
    );
    assert!(headers.contains_key(RETRY_AFTER));
    assert_eq!(echo.calls(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_admit_exactly_the_limit() {
    let world = World::new();
    let tenant = world.tenant("acme", TenantStatus::Active).await;
    let layer = QuotaLayer::new(
        world.quota.clone(),
        QuotaConfig::default().with_rate_policy(|_: &Tenant| rate(25, Duration::from_secs(3600))),
    )
    .unwrap();
    let echo = Echo::default();
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let service = layer.layer(echo.service());
        let request = get_as(&tenant);
        tasks.push(tokio::spawn(async move { send(service, request).await.0 }));
    }
    let mut admitted = 0;
    for task in tasks {
        if task.await.unwrap() == 200 {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 25);
    assert_eq!(echo.calls(), 25);
}
