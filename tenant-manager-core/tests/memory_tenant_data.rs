//! `InMemoryTenantData` and the `InMemoryProvisioner` that creates its tenant spaces.

#![allow(clippy::expect_used)]

mod support;

use std::sync::Arc;

use serde_json::json;
use tenant_manager_core::memory::{InMemoryProvisioner, InMemoryTenantData};
use tenant_manager_core::testing::provisioner::sample_tenant_record;
use tenant_manager_core::testing::support::{expect_conflict, expect_invalid, expect_not_found};
use tenant_manager_core::{Entity, Isolation, ProvisionStep, Provisioner, Tenant};

/// A shared data store with records of at most 4 KiB, its provisioner, and one provisioned
/// tenant.
async fn setup() -> (Arc<InMemoryTenantData>, InMemoryProvisioner, Tenant) {
    support::provisioned(
        InMemoryTenantData::new().with_max_record_bytes(4096),
        Isolation::Shared,
    )
    .await
}

#[tokio::test]
async fn provisioning_creates_and_drops_the_tenant_space() {
    let data = Arc::new(InMemoryTenantData::new());
    let provisioner = InMemoryProvisioner::new(Arc::clone(&data));
    assert!(Arc::ptr_eq(provisioner.data(), &data));
    for isolation in [Isolation::Database, Isolation::Schema, Isolation::Shared] {
        let tenant = sample_tenant_record(isolation);
        assert!(!data.contains(tenant.id));
        let report = provisioner.provision(&tenant).await.expect("provision");
        assert_eq!(report.steps_run, ProvisionStep::ALL.to_vec());
        assert!(!report.used_template);
        assert!(data.contains(tenant.id));
        data.insert(tenant.id, "companies", "c1", json!({"name": "Acme"}))
            .expect("insert");
        // A second provision keeps the data.
        assert!(
            provisioner
                .provision(&tenant)
                .await
                .expect("again")
                .steps_run
                .is_empty()
        );
        assert_eq!(
            data.get(tenant.id, "companies", "c1").expect("kept")["name"],
            "Acme"
        );
        provisioner.deprovision(&tenant).await.expect("deprovision");
        assert!(!data.contains(tenant.id));
        expect_not_found(data.get(tenant.id, "companies", "c1"), Entity::Tenant);
        // Provisioning again starts from an empty space.
        provisioner
            .provision(&tenant)
            .await
            .expect("provision again");
        expect_not_found(data.get(tenant.id, "companies", "c1"), Entity::Record);
        assert_eq!(data.size_bytes(tenant.id).expect("size"), 0);
    }
}

#[tokio::test]
async fn records_are_inserted_read_listed_updated_and_deleted() {
    let (data, _provisioner, tenant) = setup().await;
    let t = tenant.id;
    for i in 0..5 {
        data.insert(
            t,
            "companies",
            &format!("c{i}"),
            json!({"name": format!("Company {i}")}),
        )
        .expect("insert");
    }
    expect_conflict(
        data.insert(t, "companies", "c1", json!({"name": "dup"})),
        "id",
    );
    assert_eq!(
        data.get(t, "companies", "c3").expect("get")["name"],
        "Company 3"
    );
    expect_not_found(data.get(t, "companies", "nope"), Entity::Record);
    expect_not_found(data.get(t, "contacts", "c1"), Entity::Record);

    let first = data.list(t, "companies", None, 2).expect("page 1");
    let ids: Vec<&str> = first.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["c0", "c1"]);
    let rest = data.list(t, "companies", Some("c1"), 10).expect("page 2");
    let ids: Vec<&str> = rest.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["c2", "c3", "c4"]);
    assert!(
        data.list(t, "contacts", None, 10)
            .expect("empty")
            .is_empty()
    );
    expect_invalid(data.list(t, "companies", None, 0), "limit");

    data.update(t, "companies", "c2", json!({"name": "Renamed"}))
        .expect("update");
    assert_eq!(
        data.get(t, "companies", "c2").expect("get")["name"],
        "Renamed"
    );
    expect_not_found(data.update(t, "companies", "c9", json!({})), Entity::Record);
    assert!(data.delete(t, "companies", "c2").expect("delete"));
    assert!(!data.delete(t, "companies", "c2").expect("delete again"));
    assert!(
        !data
            .delete(t, "contacts", "c2")
            .expect("unknown collection")
    );
    assert_eq!(data.list(t, "companies", None, 10).expect("list").len(), 4);
}

#[tokio::test]
async fn a_tenant_reaches_only_its_own_data() {
    let (data, provisioner, a) = setup().await;
    let b = sample_tenant_record(Isolation::Shared);
    provisioner.provision(&b).await.expect("provision b");
    data.insert(a.id, "companies", "same-id", json!("a's"))
        .expect("a");
    data.insert(b.id, "companies", "same-id", json!("b's"))
        .expect("b");
    assert_eq!(
        data.get(a.id, "companies", "same-id").expect("a"),
        json!("a's")
    );
    assert_eq!(
        data.get(b.id, "companies", "same-id").expect("b"),
        json!("b's")
    );
    provisioner.deprovision(&b).await.expect("deprovision b");
    assert_eq!(
        data.get(a.id, "companies", "same-id").expect("a"),
        json!("a's")
    );
}

#[tokio::test]
async fn unprovisioned_tenants_and_bad_input_are_refused() {
    let (data, _provisioner, tenant) = setup().await;
    let stranger = sample_tenant_record(Isolation::Schema);
    expect_not_found(data.insert(stranger.id, "c", "x", json!(1)), Entity::Tenant);
    expect_not_found(data.get(stranger.id, "c", "x"), Entity::Tenant);
    expect_not_found(data.list(stranger.id, "c", None, 1), Entity::Tenant);
    expect_not_found(data.update(stranger.id, "c", "x", json!(1)), Entity::Tenant);
    expect_not_found(data.delete(stranger.id, "c", "x"), Entity::Tenant);
    expect_not_found(data.size_bytes(stranger.id), Entity::Tenant);
    expect_not_found(data.snapshot(stranger.id), Entity::Tenant);
    expect_not_found(
        data.restore(stranger.id, b"{\"collections\":{}}"),
        Entity::Tenant,
    );

    let t = tenant.id;
    for collection in [
        "",
        "Companies",
        "1st",
        "a-b",
        "x; drop table",
        "ü",
        &"c".repeat(64),
    ] {
        expect_invalid(data.insert(t, collection, "id", json!(1)), "collection");
    }
    for id in ["", "a/b", "a b", "../x", "ü", "x'--", &"i".repeat(129)] {
        expect_invalid(data.insert(t, "companies", id, json!(1)), "id");
        expect_invalid(data.get(t, "companies", id), "id");
    }
    expect_invalid(data.list(t, "companies", Some("a b"), 1), "id");
    let big = json!("x".repeat(5000));
    expect_invalid(data.insert(t, "companies", "big", big.clone()), "record");
    data.insert(t, "companies", "small", json!("s"))
        .expect("small");
    expect_invalid(data.update(t, "companies", "small", big), "record");
    assert_eq!(data.get(t, "companies", "small").expect("kept"), json!("s"));
}

#[tokio::test]
async fn size_is_accounted_on_every_change() {
    let (data, _provisioner, tenant) = setup().await;
    let t = tenant.id;
    let size = |id: &str, value: &serde_json::Value| {
        (id.len() + serde_json::to_vec(value).expect("json").len()) as u64
    };
    assert_eq!(data.size_bytes(t).expect("size"), 0);
    let v1 = json!({"name": "Acme", "domain": "acme.example"});
    data.insert(t, "companies", "c1", v1.clone())
        .expect("insert");
    assert_eq!(data.size_bytes(t).expect("size"), size("c1", &v1));
    let v2 = json!({"name": "A"});
    data.insert(t, "contacts", "p1", v2.clone())
        .expect("insert");
    assert_eq!(
        data.size_bytes(t).expect("size"),
        size("c1", &v1) + size("p1", &v2)
    );
    let v3 = json!({"name": "Acme Corporation International"});
    data.update(t, "companies", "c1", v3.clone())
        .expect("update");
    assert_eq!(
        data.size_bytes(t).expect("size"),
        size("c1", &v3) + size("p1", &v2)
    );
    data.delete(t, "contacts", "p1").expect("delete");
    assert_eq!(data.size_bytes(t).expect("size"), size("c1", &v3));
}

#[tokio::test]
async fn snapshots_restore_whole_and_refuse_garbage() {
    let (data, provisioner, tenant) = setup().await;
    let t = tenant.id;
    data.insert(t, "companies", "c1", json!({"name": "Acme"}))
        .expect("c1");
    data.insert(t, "contacts", "p1", json!(["a", 1, null]))
        .expect("p1");
    let snapshot = data.snapshot(t).expect("snapshot");
    let size = data.size_bytes(t).expect("size");
    data.insert(t, "companies", "c2", json!("later"))
        .expect("c2");
    data.delete(t, "contacts", "p1").expect("delete");
    data.restore(t, &snapshot).expect("restore");
    assert_eq!(data.size_bytes(t).expect("size"), size);
    expect_not_found(data.get(t, "companies", "c2"), Entity::Record);
    assert_eq!(
        data.get(t, "contacts", "p1").expect("p1"),
        json!(["a", 1, null])
    );

    // Into another tenant: a clone.
    let clone = sample_tenant_record(Isolation::Database);
    provisioner
        .provision(&clone)
        .await
        .expect("provision clone");
    data.restore(clone.id, &snapshot).expect("clone");
    assert_eq!(data.snapshot(clone.id).expect("snapshot"), snapshot);

    // Garbage and snapshots with bad names are refused, and change nothing.
    for bad in [
        &b"not json"[..],
        b"{}",
        b"{\"collections\": []}",
        b"{\"collections\": {\"Bad Name\": {}}}",
        b"{\"collections\": {\"ok\": {\"bad id\": 1}}}",
    ] {
        expect_invalid(data.restore(t, bad), "snapshot");
    }
    assert_eq!(data.snapshot(t).expect("unchanged"), snapshot);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_of_one_tenant_lose_nothing() {
    let (data, _provisioner, tenant) = setup().await;
    let handles: Vec<_> = (0..8)
        .map(|w| {
            let data = Arc::clone(&data);
            tokio::task::spawn_blocking(move || {
                for i in 0..200 {
                    data.insert(tenant.id, "events", &format!("w{w}-{i:03}"), json!(i))
                        .expect("insert");
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.expect("writer");
    }
    let mut count = 0;
    let mut after: Option<String> = None;
    loop {
        let page = data
            .list(tenant.id, "events", after.as_deref(), 500)
            .expect("list");
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        count += page.len();
    }
    assert_eq!(count, 8 * 200);
}
