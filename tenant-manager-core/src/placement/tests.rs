use super::*;
use crate::domain::{Isolation, TenantSlug};
use crate::traits::ServerSpec;

fn id(s: &str) -> ServerId {
    ServerId::new(s).unwrap_or_else(|e| panic!("{e}"))
}

fn server(name: &str, capacity: Option<u64>, region: Option<&str>, tenants: u64) -> ServerLoad {
    let spec = ServerSpec::new(id(name))
        .with_capacity(capacity)
        .with_region(region.map(str::to_owned))
        .unwrap_or_else(|e| panic!("{e}"));
    ServerLoad::new(spec, tenants)
}

fn request() -> PlacementRequest {
    let slug = TenantSlug::new("acme").unwrap_or_else(|e| panic!("{e}"));
    PlacementRequest::new(slug, Isolation::Schema)
}

fn place(request: &PlacementRequest, servers: &[ServerLoad]) -> Result<ServerId> {
    LeastLoaded::by_tenants().place(request, servers)
}

#[test]
fn the_least_loaded_server_per_capacity_wins_and_ties_go_by_id() {
    let servers = [
        server("a", Some(100), None, 50),
        server("b", Some(1000), None, 100),
    ];
    assert_eq!(place(&request(), &servers).ok(), Some(id("b")));
    let servers = [
        server("a", Some(100), None, 10),
        server("b", Some(200), None, 20),
    ];
    assert_eq!(place(&request(), &servers).ok(), Some(id("a")));
    // Without capacities, raw counts.
    let servers = [server("a", None, None, 3), server("b", None, None, 2)];
    assert_eq!(place(&request(), &servers).ok(), Some(id("b")));
}

#[test]
fn full_servers_are_skipped_and_none_left_is_no_capacity() {
    let servers = [
        server("a", Some(10), None, 10),
        server("b", Some(1000), None, 999),
    ];
    assert_eq!(place(&request(), &servers).ok(), Some(id("b")));
    let servers = [
        server("a", Some(10), None, 10),
        server("b", Some(0), None, 0),
    ];
    let err = place(&request(), &servers).err();
    assert_eq!(err.map(|e| e.code()), Some("no_server_capacity"));
}

#[test]
fn a_region_pins_the_tenant_to_its_servers() {
    let servers = [
        server("eu1", None, Some("eu"), 5),
        server("us1", None, Some("us"), 0),
    ];
    let eu = request().with_region(Some("eu".into()));
    assert_eq!(place(&eu, &servers).ok(), Some(id("eu1")));
    let ap = request().with_region(Some("ap".into()));
    let err = place(&ap, &servers).err();
    assert_eq!(err.as_ref().and_then(Error::field), Some("region"));
    // A tenant without region goes anywhere.
    assert_eq!(place(&request(), &servers).ok(), Some(id("us1")));
    // No server declares a region: regions do not steer.
    let plain = [server("a", None, None, 1), server("b", None, None, 0)];
    assert_eq!(place(&eu, &plain).ok(), Some(id("b")));
}

#[test]
fn an_operators_choice_is_honoured_or_refused_on_field_server() {
    let servers = [
        server("eu1", Some(10), Some("eu"), 0),
        server("eu2", Some(10), Some("eu"), 10),
        server("us1", Some(10), Some("us"), 9),
    ];
    let chosen = request().with_server(Some(id("us1")));
    assert_eq!(place(&chosen, &servers).ok(), Some(id("us1")));
    for (req, why) in [
        (request().with_server(Some(id("nope"))), "unknown"),
        (request().with_server(Some(id("eu2"))), "full"),
        (
            request()
                .with_region(Some("eu".into()))
                .with_server(Some(id("us1"))),
            "other region",
        ),
    ] {
        let err = place(&req, &servers).err();
        assert_eq!(err.as_ref().and_then(Error::field), Some("server"), "{why}");
    }
}

#[test]
fn by_size_ranks_known_sizes_first() {
    let servers = [
        server("a", None, None, 1).with_bytes(Some(900)),
        server("b", None, None, 5).with_bytes(Some(100)),
        server("c", None, None, 0),
    ];
    let policy = LeastLoaded::by_size();
    assert_eq!(policy.place(&request(), &servers).ok(), Some(id("b")));
    assert_eq!(
        LeastLoaded::by_tenants().place(&request(), &servers).ok(),
        Some(id("c"))
    );
}
