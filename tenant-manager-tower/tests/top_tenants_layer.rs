//! `TopTenantsLayer`: answers to requests of a resolved tenant are recorded (5xx and inner
//! errors as errors), requests without a tenant are not, and a `TenantLayer` in front
//! supplies the tenant.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use common::{Echo, World, get, get_as, get_bearer, send};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tenant_manager_core::topk::{RankBy, TopTenants, TopTenantsConfig};
use tenant_manager_core::{Role, TenantStatus};
use tenant_manager_tower::TopTenantsLayer;
use tower::{ServiceBuilder, ServiceExt};

fn top() -> Arc<TopTenants> {
    Arc::new(TopTenants::new(TopTenantsConfig::default().with_k(5)).unwrap())
}

fn now() -> std::time::Instant {
    std::time::Instant::now()
}

#[tokio::test]
async fn answers_of_a_resolved_tenant_are_counted_and_5xx_are_errors() {
    let world = World::new();
    let acme = world.tenant("acme", TenantStatus::Active).await;
    let top = top();
    let ok = ServiceBuilder::new()
        .layer(TopTenantsLayer::new(top.clone()))
        .service(Echo::default().service());
    for _ in 0..3 {
        let (status, _, _) = send(ok.clone(), get_as(&acme)).await;
        assert_eq!(status, 200);
    }
    let failing = ServiceBuilder::new()
        .layer(TopTenantsLayer::new(top.clone()))
        .service(tower::service_fn(|_: Request<Full<Bytes>>| async {
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::BAD_GATEWAY;
            Ok::<_, Infallible>(response)
        }));
    let (status, _, _) = send(failing, get_as(&acme)).await;
    assert_eq!(status, 502);
    let erring = ServiceBuilder::new()
        .layer(TopTenantsLayer::new(top.clone()))
        .service(tower::service_fn(|_: Request<Full<Bytes>>| async {
            Err::<Response<Full<Bytes>>, _>("inner failure")
        }));
    assert!(erring.oneshot(get_as(&acme)).await.is_err());
    // Without a tenant: passed through, not recorded.
    let (status, _, _) = send(ok, get("/", &[])).await;
    assert_eq!(status, 200);

    let ranked = top.top(5, RankBy::Requests, now()).unwrap();
    assert_eq!(ranked.len(), 1, "{ranked:?}");
    assert_eq!(ranked[0].tenant, acme.id);
    assert_eq!(ranked[0].slug, acme.slug);
    assert_eq!((ranked[0].requests, ranked[0].errors), (5, 2));
}

#[tokio::test]
async fn inside_the_tenant_layer_each_tenant_is_counted_apart() {
    let world = World::new();
    let (acme, globex) = (
        world.tenant("acme", TenantStatus::Active).await,
        world.tenant("globex", TenantStatus::Active).await,
    );
    let top = top();
    let service = ServiceBuilder::new()
        .layer(world.jwt_layer())
        .layer(TopTenantsLayer::new(top.clone()))
        .service(Echo::default().service());
    let (acme_token, _) = world.token(&acme, Role::Member);
    let (globex_token, _) = world.token(&globex, Role::Member);
    for _ in 0..4 {
        send(service.clone(), get_bearer("/", &acme_token)).await;
    }
    send(service.clone(), get_bearer("/", &globex_token)).await;
    // Refused by the tenant layer before reaching the sketch: no tenant, nothing recorded.
    let (status, _, _) = send(service, get_bearer("/", "not-a-token")).await;
    assert_eq!(status, 401);
    let ranked: Vec<_> = top
        .top(5, RankBy::Requests, now())
        .unwrap()
        .into_iter()
        .map(|t| (t.slug.as_str().to_owned(), t.requests))
        .collect();
    assert_eq!(ranked, [("acme".to_owned(), 4), ("globex".to_owned(), 1)]);
}
