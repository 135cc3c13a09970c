//! `QuotaLayer` rate-limits IPv6 clients per /64 network (one subscriber's block) and
//! IPv4-mapped IPv6 peers as their IPv4 address, over the real in-memory enforcer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use common::{Echo, World, get, send};
use http::Request;
use http_body_util::Full;
use tenant_manager_core::RateLimit;
use tenant_manager_tower::{ClientAddr, ClientIpSource, QuotaConfig, QuotaLayer};
use tower::Layer;

fn from_peer(ip: &str) -> Request<Full<Bytes>> {
    let mut request = get("/login", &[]);
    request
        .extensions_mut()
        .insert(ClientAddr(ip.parse::<IpAddr>().unwrap()));
    request
}

async fn status(layer: &QuotaLayer, request: Request<Full<Bytes>>) -> u16 {
    send(layer.layer(Echo::default().service()), request)
        .await
        .0
}

fn layer(world: &World, limit: u64, source: ClientIpSource) -> QuotaLayer {
    let rate = RateLimit::new(limit, Duration::from_secs(600)).unwrap();
    QuotaLayer::new(
        world.quota.clone(),
        QuotaConfig::default()
            .with_client_limit(rate)
            .with_client_ip(source),
    )
    .unwrap()
}

#[tokio::test]
async fn fresh_addresses_of_one_64_share_one_budget() {
    let world = World::new();
    let layer = layer(&world, 3, ClientIpSource::Peer);
    // A client rotating through its /64 gets the limit once, not once per address.
    for host in ["2001:db8:7:1::1", "2001:db8:7:1::2", "2001:db8:7:1:abcd::9"] {
        assert_eq!(status(&layer, from_peer(host)).await, 200, "{host}");
    }
    assert_eq!(status(&layer, from_peer("2001:db8:7:1:ffff::1")).await, 429);
    // The neighbouring /64 is another subscriber.
    assert_eq!(status(&layer, from_peer("2001:db8:7:2::1")).await, 200);
}

#[tokio::test]
async fn ipv4_mapped_ipv6_counts_as_the_ipv4_address() {
    let world = World::new();
    let layer = layer(&world, 2, ClientIpSource::Peer);
    assert_eq!(status(&layer, from_peer("198.51.100.4")).await, 200);
    assert_eq!(status(&layer, from_peer("::ffff:198.51.100.4")).await, 200);
    assert_eq!(status(&layer, from_peer("198.51.100.4")).await, 429);
    assert_eq!(status(&layer, from_peer("::ffff:198.51.100.4")).await, 429);
    // IPv4 addresses stay apart: no bucketing of IPv4.
    assert_eq!(status(&layer, from_peer("198.51.100.5")).await, 200);
}

#[tokio::test]
async fn the_64_applies_to_addresses_from_a_trusted_proxy_header() {
    let world = World::new();
    let layer = layer(&world, 1, ClientIpSource::forwarded_for(1));
    let forwarded = |ip: &'static str| {
        let mut request = get("/login", &[("x-forwarded-for", ip)]);
        request
            .extensions_mut()
            .insert(ClientAddr([10, 0, 0, 1].into()));
        request
    };
    assert_eq!(status(&layer, forwarded("2001:db8:9:9::1")).await, 200);
    assert_eq!(
        status(&layer, forwarded("[2001:db8:9:9::2]:443")).await,
        429
    );
    assert_eq!(status(&layer, forwarded("2001:db8:9:a::1")).await, 200);
}
